//! `registry watch`: each change of a service's instances, as it happens,
//! through the library's watcher (which lists again after any break:
//! restarts, wipes, compaction, and reports the true difference).

use std::process::ExitCode;

use libregistry::Client;

use crate::args::ChangeFormat;
use crate::exit::Failure;
use crate::output;
use crate::signals::Signals;

/// Prints the instances found as `added`, then every change, until SIGTERM,
/// SIGINT or a closed stdout.
pub async fn watch(client: &Client, name: &str, format: ChangeFormat) -> Result<ExitCode, Failure> {
    let mut signals = Signals::catch(false)
        .map_err(|err| Failure::Local(format!("cannot catch signals: {err}")))?;
    let watcher = client.watch(name).await?;
    loop {
        tokio::select! {
            change = watcher.next_change_within(None) => {
                let Some(change) = change? else { continue };
                let mut line = output::change(&change, format);
                line.push('\n');
                let printed = output::emit(&line)
                    .map_err(|err| Failure::Local(format!("cannot write to stdout: {err}")))?;
                if !printed {
                    break;
                }
            }
            _ = signals.next() => break,
        }
    }
    watcher.close();
    Ok(ExitCode::SUCCESS)
}
