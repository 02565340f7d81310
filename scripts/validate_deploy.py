#!/usr/bin/env python3
"""Validate deploy/ without Docker, Kubernetes or Prometheus.

    python3 scripts/validate_deploy.py [REPO_ROOT] [--metrics-file PATH]

Checks:
  * every .yml/.yaml (all documents) and .json file under deploy/ parses;
  * docker-compose.yml has the expected services, each with `build` or `image`, and the files,
    build contexts, volumes and dependencies it refers to exist; secrets come from the host env;
  * every Prometheus rule file has alert or recording rules; every alert rule has alert, expr, a valid `for`, labels.severity and
    annotations.summary; prometheus.yml's rule_files exist;
  * the Grafana dashboards have unique panel ids, a query in every target and the variables they use;
  * the Kubernetes manifests name no namespace and the files kustomization.yaml lists exist;
  * every metric name (nbo_...) that a dashboard or an alert rule uses is declared as a string
    literal in the metrics file (src/telemetry/metrics.rs), after stripping the histogram
    suffixes _bucket, _sum and _count; every recorded series (level:nbo_metric:operations) they
    use is recorded by a rule.

Prints one line per problem and a summary line; exits 0 when there is no problem, 1 otherwise.
"""

import argparse
import glob
import json
import os
import re
import sys

try:
    import yaml
except ImportError:
    print(
        "validate_deploy.py needs PyYAML: install it with `pip install pyyaml` "
        "(or the python3-yaml package) and run again.",
        file=sys.stderr,
    )
    sys.exit(1)


COMPOSE_SERVICES = ("kafka", "redis", "topics", "nbo-stream", "prometheus", "grafana")
# Variables that must come from the host environment in compose, never a literal value.
COMPOSE_SECRETS = ("NBO_CUSTOMER_KEY_SECRET", "NBO_KAFKA__SASL_PASSWORD", "NBO_REDIS__PASSWORD")
SEVERITIES = ("info", "warning", "critical")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:])nbo_[a-z0-9_]+")
# A recorded series (level:metric:operations), defined by a `record` rule in deploy/prometheus/.
RECORDED_RE = re.compile(r"(?<![A-Za-z0-9_:])[a-z_]+:nbo_[a-z0-9_]+:[a-z0-9_]+")
DECLARED_RE = re.compile(r'"(nbo_[a-z0-9_]+)"')
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
INTERPOLATION_RE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$")


class Report:
    def __init__(self, root):
        self.root = root
        self.problems = []
        self.notes = []

    def rel(self, path):
        relative = os.path.relpath(path, self.root)
        return path if relative.startswith("..") else relative

    def problem(self, path, message):
        self.problems.append(f"{self.rel(path)}: {message}")

    def note(self, message):
        self.notes.append(message)


def walk_strings(node):
    """Every string in a parsed YAML/JSON tree (keys included)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                yield key
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def deploy_files(deploy_dir):
    found = []
    for dirpath, dirnames, filenames in os.walk(deploy_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".yml", ".yaml", ".json")):
                found.append(os.path.join(dirpath, name))
    return found


def parse_all(files, report):
    """Path -> list of documents, for the files that parse."""
    parsed = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                if path.endswith(".json"):
                    parsed[path] = [json.load(handle)]
                else:
                    parsed[path] = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
        except (OSError, ValueError, yaml.YAMLError) as err:
            report.problem(path, "does not parse: " + " ".join(str(err).split()))
    return parsed


# ---------------------------------------------------------------------------------- compose

def check_compose(deploy_dir, parsed, report):
    path = os.path.join(deploy_dir, "docker-compose.yml")
    if not os.path.exists(path):
        report.problem(path, "missing")
        return
    docs = parsed.get(path)
    if not docs:
        return
    compose = docs[0]
    services = compose.get("services") if isinstance(compose, dict) else None
    if not isinstance(services, dict):
        report.problem(path, "no `services` mapping")
        return
    for name in COMPOSE_SERVICES:
        if name not in services:
            report.problem(path, f"service `{name}` is missing")
    declared_volumes = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        if not isinstance(service, dict):
            report.problem(path, f"service `{name}` is not a mapping")
            continue
        if "build" not in service and "image" not in service:
            report.problem(path, f"service `{name}` has neither `build` nor `image`")
        check_compose_build(deploy_dir, path, name, service.get("build"), report)
        for volume in service.get("volumes") or []:
            check_compose_volume(deploy_dir, path, name, volume, declared_volumes, report)
        depends = service.get("depends_on") or []
        for dependency in depends if isinstance(depends, list) else depends.keys():
            if dependency not in services:
                report.problem(path, f"service `{name}` depends on unknown service `{dependency}`")
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
        for secret in COMPOSE_SECRETS:
            value = environment.get(secret)
            if value is not None and not INTERPOLATION_RE.match(str(value)):
                report.problem(path, f"service `{name}` sets {secret} to a literal: take it from the host "
                                     f"environment, e.g. ${{{secret}:?set it}}")


def check_compose_build(deploy_dir, path, name, build, report):
    if build is None:
        return
    if isinstance(build, str):
        build = {"context": build}
    context = os.path.normpath(os.path.join(deploy_dir, build.get("context", ".")))
    if not os.path.isdir(context):
        report.problem(path, f"service `{name}`: build context {report.rel(context)} does not exist")
        return
    dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
    if not os.path.isfile(dockerfile):
        report.problem(path, f"service `{name}`: Dockerfile {report.rel(dockerfile)} does not exist")


def check_compose_volume(deploy_dir, path, name, volume, declared_volumes, report):
    if isinstance(volume, dict):
        source, kind = volume.get("source"), volume.get("type", "volume")
    else:
        source = str(volume).split(":", 1)[0] if ":" in str(volume) else None
        kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
    if not source:
        return
    if kind == "bind":
        if not os.path.exists(os.path.normpath(os.path.join(deploy_dir, source))):
            report.problem(path, f"service `{name}` mounts {source}, which does not exist")
    elif kind == "volume" and source not in declared_volumes:
        report.problem(path, f"service `{name}` uses volume `{source}`, not declared under `volumes`")


# ---------------------------------------------------------------------------------- prometheus

def rule_files(parsed):
    """Paths of the parsed YAML files that are Prometheus rule files (top-level `groups`)."""
    return [path for path, docs in parsed.items()
            if not path.endswith(".json") and docs and isinstance(docs[0], dict) and "groups" in docs[0]
            and "services" not in docs[0]]


def check_rules(path, docs, report):
    names = set()
    count = 0
    records = 0
    for group in docs[0].get("groups") or []:
        if not isinstance(group, dict) or not group.get("name"):
            report.problem(path, "a rule group has no name")
            continue
        for index, rule in enumerate(group.get("rules") or []):
            where = f"group {group['name']}, rule {index + 1}"
            if not isinstance(rule, dict):
                report.problem(path, f"{where}: not a mapping")
                continue
            if "record" in rule:
                records += 1
                if not rule.get("expr"):
                    report.problem(path, f"{where} ({rule['record']}): no expr")
                continue
            count += 1
            alert = rule.get("alert")
            if not alert:
                report.problem(path, f"{where}: no `alert` name")
                alert = where
            elif alert in names:
                report.problem(path, f"alert {alert} is defined twice")
            names.add(alert)
            if not str(rule.get("expr") or "").strip():
                report.problem(path, f"alert {alert}: no expr")
            if "for" not in rule:
                report.problem(path, f"alert {alert}: no `for`")
            elif not DURATION_RE.match(str(rule["for"])):
                report.problem(path, f"alert {alert}: `for: {rule['for']}` is not a Prometheus duration")
            severity = (rule.get("labels") or {}).get("severity")
            if not severity:
                report.problem(path, f"alert {alert}: no labels.severity")
            elif severity not in SEVERITIES:
                report.problem(path, f"alert {alert}: severity `{severity}` is not one of {', '.join(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description"):
                if not str(annotations.get(key) or "").strip():
                    report.problem(path, f"alert {alert}: no annotations.{key}")
    if count == 0 and records == 0:
        report.problem(path, "no alert or recording rules")


def check_prometheus_config(path, docs, report):
    config = docs[0] if docs else None
    if not isinstance(config, dict) or "scrape_configs" not in config:
        return
    base = os.path.dirname(path)
    for pattern in config.get("rule_files") or []:
        if not glob.glob(os.path.join(base, pattern)):
            report.problem(path, f"rule_files entry {pattern} matches no file")
    if not config.get("scrape_configs"):
        report.problem(path, "no scrape_configs")


# ---------------------------------------------------------------------------------- grafana

def dashboard_files(parsed):
    return [path for path, docs in parsed.items()
            if path.endswith(".json") and docs and isinstance(docs[0], dict) and "panels" in docs[0]]


def all_panels(panels):
    for panel in panels or []:
        yield panel
        yield from all_panels(panel.get("panels"))


def check_dashboard(path, dashboard, report):
    variables = {var.get("name") for var in (dashboard.get("templating") or {}).get("list") or []}
    ids = set()
    text = json.dumps(dashboard)
    for used in sorted(set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))):
        if not used.startswith("__") and used not in variables:
            report.problem(path, f"uses variable ${used}, which the dashboard does not define")
    for panel in all_panels(dashboard.get("panels")):
        title = panel.get("title", "?")
        panel_id = panel.get("id")
        if panel_id is None:
            report.problem(path, f"panel `{title}` has no id")
        elif panel_id in ids:
            report.problem(path, f"panel id {panel_id} is used twice")
        ids.add(panel_id)
        if panel.get("type") == "row":
            continue
        if "gridPos" not in panel:
            report.problem(path, f"panel `{title}` has no gridPos")
        targets = panel.get("targets") or []
        if not targets:
            report.problem(path, f"panel `{title}` has no query")
        for target in targets:
            if not str(target.get("expr") or "").strip():
                report.problem(path, f"panel `{title}`, query {target.get('refId', '?')}: empty expr")


# ---------------------------------------------------------------------------------- kubernetes

def check_kubernetes(deploy_dir, parsed, report):
    kube_dir = os.path.join(deploy_dir, "kubernetes")
    for path, docs in sorted(parsed.items()):
        if not path.startswith(kube_dir + os.sep):
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                report.problem(path, "a document is not a mapping")
                continue
            if doc.get("kind") == "Kustomization":
                check_kustomization(path, doc, report)
                continue
            for key in ("apiVersion", "kind"):
                if not doc.get(key):
                    report.problem(path, f"a document has no {key}")
            metadata = doc.get("metadata") or {}
            if not metadata.get("name"):
                report.problem(path, f"{doc.get('kind')} has no metadata.name")
            if "namespace" in metadata:
                report.problem(path, f"{doc.get('kind')} {metadata.get('name')} names a namespace: "
                                     "the manifests must stay namespace-agnostic")


def check_kustomization(path, doc, report):
    base = os.path.dirname(path)
    for resource in doc.get("resources") or []:
        if "://" not in resource and not os.path.exists(os.path.join(base, resource)):
            report.problem(path, f"resource {resource} does not exist")
    for generator in (doc.get("configMapGenerator") or []) + (doc.get("secretGenerator") or []):
        for entry in generator.get("files") or []:
            source = entry.split("=", 1)[-1]
            if not os.path.exists(os.path.normpath(os.path.join(base, source))):
                report.problem(path, f"generator `{generator.get('name')}` reads {source}, which does not exist")


# ---------------------------------------------------------------------------------- metrics

def referenced_metrics(parsed, dashboards, rules):
    """(path, metric name) for every nbo_ metric name in the dashboards and the alert rules."""
    references = []
    for path in dashboards:
        for text in walk_strings(parsed[path][0]):
            references.extend((path, name) for name in METRIC_RE.findall(text))
    for path in rules:
        for group in parsed[path][0].get("groups") or []:
            for rule in group.get("rules") or []:
                if isinstance(rule, dict):
                    texts = [str(rule.get("expr") or "")] + list(walk_strings(rule.get("annotations") or {}))
                    for text in texts:
                        references.extend((path, name) for name in METRIC_RE.findall(text))
    return references


def check_recorded(parsed, dashboards, rules, report):
    """Every recorded series (level:nbo_metric:operations) a dashboard or rule uses is recorded."""
    defined = set()
    for path in rules:
        for group in parsed[path][0].get("groups") or []:
            for rule in group.get("rules") or []:
                if isinstance(rule, dict) and rule.get("record"):
                    defined.add(rule["record"])
    texts = []
    for path in dashboards:
        texts.extend((path, text) for text in walk_strings(parsed[path][0]))
    for path in rules:
        for group in parsed[path][0].get("groups") or []:
            for rule in group.get("rules") or []:
                if isinstance(rule, dict):
                    texts.append((path, str(rule.get("expr") or "")))
    for path, text in texts:
        for name in RECORDED_RE.findall(text):
            if name not in defined:
                report.problem(path, f"recorded series {name} is recorded by no rule in deploy/prometheus/")


def resolve(name, declared):
    if name in declared:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in declared:
            return name[: -len(suffix)]
    return None


def check_metrics(metrics_file, references, dashboards, report):
    try:
        with open(metrics_file, encoding="utf-8") as handle:
            declared = set(DECLARED_RE.findall(handle.read()))
    except OSError as err:
        report.problem(metrics_file, f"cannot read the metrics file ({err.strerror}): metric names unchecked")
        return
    if not declared:
        report.problem(metrics_file, 'declares no "nbo_..." metric name as a string literal')
        return
    used = set()
    unknown = {}
    for path, name in references:
        found = resolve(name, declared)
        if found:
            used.add(found)
        else:
            unknown.setdefault((path, name), 0)
            unknown[(path, name)] += 1
    for (path, name), count in sorted(unknown.items()):
        report.problem(path, f"metric {name} is not declared in {report.rel(metrics_file)}"
                             + (f" ({count} uses)" if count > 1 else ""))
    if dashboards:
        dashboard_used = {resolve(name, declared) for path, name in references if path in dashboards}
        missing = sorted(declared - dashboard_used)
        if missing:
            report.note("note: declared but on no dashboard: " + ", ".join(missing))


# ---------------------------------------------------------------------------------- main

def main(argv):
    default_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description="Validate the deploy/ directory.")
    parser.add_argument("root", nargs="?", default=default_root,
                        help="repository root (default: the parent of this script's folder)")
    parser.add_argument("--metrics-file", default=None,
                        help="Rust file declaring the metric names (default: ROOT/src/telemetry/metrics.rs)")
    args = parser.parse_args(argv)

    root = os.path.abspath(args.root)
    metrics_file = os.path.abspath(args.metrics_file) if args.metrics_file else \
        os.path.join(root, "src", "telemetry", "metrics.rs")
    deploy_dir = os.path.join(root, "deploy")
    report = Report(root)
    if not os.path.isdir(deploy_dir):
        print(f"no deploy/ folder under {root}", file=sys.stderr)
        return 1

    files = deploy_files(deploy_dir)
    parsed = parse_all(files, report)

    check_compose(deploy_dir, parsed, report)
    rules = rule_files(parsed)
    if not rules:
        report.problem(deploy_dir, "no Prometheus rule file (a YAML file with `groups`)")
    for path in rules:
        check_rules(path, parsed[path], report)
    for path, docs in parsed.items():
        if path.endswith((".yml", ".yaml")):
            check_prometheus_config(path, docs, report)
    dashboards = dashboard_files(parsed)
    if not dashboards:
        report.problem(deploy_dir, "no Grafana dashboard (a JSON file with `panels`)")
    for path in dashboards:
        check_dashboard(path, parsed[path][0], report)
    check_kubernetes(deploy_dir, parsed, report)

    references = referenced_metrics(parsed, dashboards, rules)
    check_metrics(metrics_file, references, set(dashboards), report)
    check_recorded(parsed, dashboards, rules, report)

    for note in report.notes:
        print(note)
    for problem in report.problems:
        print(f"problem: {problem}")
    print(f"deploy validation: {len(files)} files, {len(references)} metric references, "
          f"{len(report.problems)} problems")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
