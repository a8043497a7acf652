//! `registry`: registers any process in etcd the way libregistry does, and
//! reads what is registered. One module per concept: `args` (the command
//! line), `settings` (options and service, checked by the library's rules),
//! `supervise` (run and register), `child` and `signals` (the supervised
//! command), `list` and `watch` (consumers), `output` (formats), `exit`
//! (statuses).

mod args;
mod child;
mod exit;
mod list;
mod output;
mod settings;
mod signals;
mod supervise;
mod watch;

use std::process::ExitCode;

use clap::Parser as _;
use libregistry::logs::{forward_logs, Level};

use args::{Cli, Command};
use exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse(); // a usage error exits 2 here, naming the argument
    show_logs(cli.connection.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return exit::report(Failure::Local(format!("cannot start: {err}"))),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(failure) => exit::report(failure),
    }
}

/// Runs the subcommand. Every argument is checked before etcd is
/// contacted, and etcd before a command is started.
async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let options = settings::options(&cli.connection)?;
    match cli.command {
        Command::Run(run) => {
            let service = settings::service(&run.service, &options)?;
            let client = settings::connect(options).await?;
            supervise::run(client, service, run.drain, &run.command).await
        }
        Command::Register(args) => {
            let service = settings::service(&args, &options)?;
            let client = settings::connect(options).await?;
            supervise::register_until_stopped(client, service).await
        }
        Command::List(list) => {
            let client = settings::connect(options).await?;
            let listed = list::list(&client, &list.name, list.output).await;
            close_reader(&client).await;
            listed.map(|()| ExitCode::SUCCESS)
        }
        Command::Get(get) => {
            let name = list::name_in(&get.key, &settings::prefix(&options)?)?.to_string();
            let client = settings::connect(options).await?;
            let got = list::get(&client, &name, &get.key, get.output).await;
            close_reader(&client).await;
            got.map(|()| ExitCode::SUCCESS)
        }
        Command::Watch(watch) => {
            let client = settings::connect(options).await?;
            let watched = watch::watch(&client, &watch.name, watch.output).await;
            close_reader(&client).await;
            watched
        }
    }
}

/// A reading client holds no lease: closing only stops its engine.
async fn close_reader(client: &libregistry::Client) {
    let _ = client.close().await;
}

/// The library's warnings and errors on stderr; with -v its info, -vv debug.
fn show_logs(verbose: u8) {
    let shown = match verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        _ => Level::DEBUG,
    };
    forward_logs(move |level, _target, text| {
        if level <= shown {
            eprintln!("registry: {level}: {text}");
        }
    });
}
