//! `snap config [KEY [VALUE]] [--unset KEY] [--keys]`

use snap::ops;

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The setting to read or set (`snap config --keys` lists them).
    #[arg(value_name = "KEY")]
    key: Option<String>,
    /// The value to set it to.
    #[arg(value_name = "VALUE", requires = "key")]
    value: Option<String>,
    /// Remove KEY's setting.
    #[arg(long, conflicts_with = "value", requires = "key")]
    unset: bool,
    /// List the settings snap knows, with what each does.
    #[arg(long, conflicts_with_all = ["key", "unset"])]
    keys: bool,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    if args.keys {
        for k in ops::config::KEYS {
            if ctx.printer.json() {
                ctx.printer
                    .json_value(&serde_json::json!({"key": k.name, "help": k.help}))?;
            } else {
                ctx.printer.line(format!("{:<18} {}", k.name, k.help))?;
            }
        }
        return Ok(ExitStatus::Success);
    }
    let store = ctx.open_store()?;
    match (&args.key, &args.value, args.unset) {
        (None, _, _) => {
            let entries = ops::config::list(&store)?;
            if ctx.printer.json() {
                let map: serde_json::Map<String, serde_json::Value> = entries
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::from(v)))
                    .collect();
                ctx.printer.json_value(&map)?;
            } else {
                for (k, v) in entries {
                    ctx.printer.line(format!("{k} = {v}"))?;
                }
            }
            Ok(ExitStatus::Success)
        }
        (Some(key), None, false) => {
            let value = ops::config::get(&store, key)?;
            if ctx.printer.json() {
                ctx.printer
                    .json_value(&serde_json::json!({"key": key, "value": value}))?;
            } else if let Some(v) = &value {
                ctx.printer.line(v)?;
            }
            // Like `git config KEY`: exit 1 when it is not set.
            Ok(if value.is_some() {
                ExitStatus::Success
            } else {
                ExitStatus::Negative
            })
        }
        (Some(key), None, true) => {
            let was = ops::config::unset(&store, key)?;
            if was {
                ctx.printer.status("Unset", key);
            }
            Ok(if was {
                ExitStatus::Success
            } else {
                ExitStatus::Negative
            })
        }
        (Some(key), Some(value), _) => {
            ops::config::set(&store, key, value)?;
            ctx.printer.status("Set", format!("{key} = {value}"));
            Ok(ExitStatus::Success)
        }
    }
}
