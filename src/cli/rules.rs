//! The `rules` verbs: `check` and `publish` (documents), `promote`, `drop` and `rollback` (the
//! lifecycle of a rule's versions), `history` and `diff` (what was published, by whom and why).
//! Every change is kept in the rules history with its author and comment before it is published.

use super::admin::load_lenient;
use super::args::{ChangeArgs, RulesCommand};
use anyhow::{anyhow, bail, Context, Result};
use nbo_stream::config::Settings;
use nbo_stream::rules::book::RuleBook;
use nbo_stream::rules::history::{self, Action, HistoryEntry, Provenance};
use nbo_stream::rules::load;
use nbo_stream::rules_topic::publish::{self, Checked, Destination, Publication};
use nbo_stream::rules_topic::watch;
use nbo_stream::{source, telemetry};
use std::sync::Arc;

/// The author of a change: `--author`, else `NBO_AUTHOR`, else the OS user.
fn author(change: &ChangeArgs) -> String {
    change
        .author
        .clone()
        .or_else(|| std::env::var("NBO_AUTHOR").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn provenance(change: &ChangeArgs, action: Action) -> Result<Provenance> {
    Provenance::new(&author(change), &change.comment, action).map_err(|e| anyhow!(e))
}

fn consumer(settings: &Settings) -> Result<rdkafka::consumer::StreamConsumer> {
    Ok(source::rules_consumer_config(&settings.kafka).create()?)
}

/// The rule files (or the starter set) with their text.
fn files(settings: &Settings) -> Result<Vec<(nbo_stream::rules::document::RuleDocument, String)>> {
    settings
        .rules
        .sources()
        .map_err(|e| anyhow!(load::describe(&e)))
}

/// The rules in force as the instances hold them: the files, then the rules topic.
async fn book(settings: &Settings) -> Result<RuleBook> {
    let features = Arc::new(settings.features.load_in(&settings.catalog)?);
    let docs = files(settings)?;
    let book = RuleBook::from_sources(features, &docs).map_err(|e| anyhow!(load::describe(&e)))?;
    let topic = &settings.topics.rules;
    watch::read_book(
        &consumer(settings)?,
        topic,
        book,
        settings.rules.startup_timeout,
    )
    .await
    .with_context(|| format!("reading {topic}"))
}

async fn entries(settings: &Settings) -> Result<Vec<HistoryEntry>> {
    let topic = &settings.topics.rules_history;
    publish::read_history(&consumer(settings)?, topic, settings.rules.startup_timeout)
        .await
        .with_context(|| format!("reading {topic}"))
}

async fn send(settings: &Settings, items: &[Publication], who: &Provenance) -> Result<()> {
    let to = Destination {
        rules: &settings.topics.rules,
        history: &settings.topics.rules_history,
    };
    let sent = publish::publish(&source::client_config(&settings.kafka), to, items, who)
        .await
        .with_context(|| format!("publishing to {}", to.rules))?;
    for (key, partition, offset) in sent {
        println!(
            "published {key} to {} [{partition}] at offset {offset}",
            to.rules
        );
    }
    Ok(())
}

/// Runs one `rules` verb.
pub(crate) async fn rules(command: RulesCommand) -> Result<()> {
    let config = match &command {
        RulesCommand::Check { config, .. } => config.clone(),
        RulesCommand::Publish { change, .. }
        | RulesCommand::Promote { change, .. }
        | RulesCommand::Drop { change, .. }
        | RulesCommand::Rollback { change, .. } => Some(change.config.clone()),
        RulesCommand::History { config, .. } | RulesCommand::Diff { config, .. } => {
            Some(config.clone())
        }
    };
    let settings = load_lenient(config.as_deref())?;
    telemetry::init_logs(&settings.telemetry);
    match command {
        RulesCommand::Check { path, .. } => {
            let checked = checked(&settings, Some(&path))?;
            for c in &checked {
                println!("{c}");
            }
            println!("{} rule document(s) valid", checked.len());
        }
        RulesCommand::Publish {
            path,
            change,
            delete,
        } => {
            let who = provenance(&change, Action::Publish)?;
            let checked = checked(&settings, path.as_deref())?;
            if checked.is_empty() && delete.is_empty() {
                bail!("nothing to publish: give a rule document or folder, or --delete RULE_ID");
            }
            // Checked against the rules in force too (a version that does not replace the one
            // in force would be rejected by every instance, yet stay in the history).
            let book = book(&settings).await?;
            let stale: Vec<String> = checked
                .iter()
                .filter_map(|c| {
                    book.admits(&c.doc)
                        .err()
                        .map(|e| format!("{e} (in {})", c.path))
                })
                .collect();
            if !stale.is_empty() {
                for e in &stale {
                    eprintln!("error {e}");
                }
                bail!(
                    "{} rule document(s) would be rejected; nothing was published",
                    stale.len()
                );
            }
            let items: Vec<Publication> = checked
                .into_iter()
                .map(|c| Publication::Document(Box::new(c)))
                .chain(delete.into_iter().map(Publication::Delete))
                .collect();
            send(&settings, &items, &who).await?;
        }
        RulesCommand::Promote { id, change } => lifecycle(&settings, &id, &change, true).await?,
        RulesCommand::Drop { id, change } => lifecycle(&settings, &id, &change, false).await?,
        RulesCommand::Rollback { id, to, change } => {
            let who = provenance(&change, Action::Rollback)?;
            let (book, entries) = (book(&settings).await?, entries(&settings).await?);
            let files = files(&settings)?;
            let (doc, text) =
                history::rollback(&entries, &files, &book, &id, to).map_err(|e| anyhow!("{e}"))?;
            println!("{id}: v{to} published again as v{}", doc.version);
            let item = Publication::Document(Box::new(Checked {
                doc,
                text,
                path: format!("rollback of {id} to v{to}"),
            }));
            send(&settings, &[item], &who).await?;
        }
        RulesCommand::History { id, .. } => {
            let entries = entries(&settings).await?;
            let mut n = 0;
            for e in history::of_rule(&entries, id.as_deref()) {
                println!("{}", e.line());
                n += 1;
            }
            println!("{n} change(s)");
        }
        RulesCommand::Diff { id, from, to, .. } => {
            let entries = entries(&settings).await?;
            let files = files(&settings)?;
            let doc = |v: i32| {
                history::text_of(&entries, &files, &id, v)
                    .and_then(|t| nbo_stream::rules::document::RuleDocument::parse_guessing(t).ok())
                    .ok_or_else(|| anyhow!("{id} v{v} is not in the rules history"))
            };
            let (a, b) = (doc(from)?, doc(to)?);
            let changes = history::diff(&a, &b);
            println!("{id}: v{from} → v{to}, {} field(s) differ", changes.len());
            for c in changes {
                println!("  {}\n    - {}\n    + {}", c.field, c.from, c.to);
            }
        }
    }
    Ok(())
}

/// Promotes (`promote`) or drops rule `id`'s challenger.
async fn lifecycle(
    settings: &Settings,
    id: &str,
    change: &ChangeArgs,
    promote: bool,
) -> Result<()> {
    let action = if promote {
        Action::Promote
    } else {
        Action::Drop
    };
    let who = provenance(change, action)?;
    let book = book(settings).await?;
    let items = if promote {
        publish::promotion(&book, id)
    } else {
        publish::drop_challenger(&book, id)
    }
    .map_err(|e| anyhow!("{e}"))?;
    send(settings, &items, &who).await?;
    println!(
        "{id}: challenger {}",
        if promote { "promoted" } else { "dropped" }
    );
    Ok(())
}

/// The documents under `path`, checked as an instance checks them; every error printed.
fn checked(settings: &Settings, path: Option<&std::path::Path>) -> Result<Vec<Checked>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let features = settings.features.load_in(&settings.catalog)?;
    match publish::check(path, &features) {
        Ok(checked) => Ok(checked),
        Err(errors) => {
            for e in &errors {
                eprintln!("error {e}");
            }
            bail!(
                "{} rule document error(s); nothing was published",
                errors.len()
            );
        }
    }
}
