//! The fleet: provider processes (each a client registering its instances
//! of one service name) and watcher processes (each a client watching some
//! of the names), driven over the line protocol of `harness::child`.

use std::process::Command;
use std::time::{Duration, Instant};

use harness::child::LineChild;

/// How long a child may take to answer a status question.
const ASK: Duration = Duration::from_secs(30);

/// The shape of the fleet.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Provider processes.
    pub processes: usize,
    /// Instances each registers.
    pub per_process: usize,
    /// Service names; process `i` registers under name `i % names`.
    pub names: usize,
    /// Watcher processes; together they watch every name once.
    pub watcher_processes: usize,
    /// Lease TTL in seconds.
    pub ttl: u32,
}

impl Shape {
    pub fn instances(&self) -> usize {
        self.processes * self.per_process
    }
}

/// The service name of index `n`.
pub fn name(n: usize) -> String {
    format!("scale-{n:03}")
}

struct Provider {
    child: LineChild,
    name: usize,
    alive: bool,
}

struct WatcherProcess {
    child: LineChild,
    /// The names it watches, in the order its counts come.
    names: Vec<usize>,
}

/// The running fleet.
pub struct Fleet {
    shape: Shape,
    exe: std::path::PathBuf,
    endpoints: String,
    providers: Vec<Provider>,
    watchers: Vec<WatcherProcess>,
}

fn spawn(exe: &std::path::Path, args: &[String]) -> Result<LineChild, String> {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    LineChild::spawn(&mut cmd, |l| !l.is_empty()).map_err(|e| format!("cannot start {args:?}: {e}"))
}

impl Fleet {
    /// Starts the watcher processes (each watching its share of the names)
    /// and waits until each answers.
    pub fn watchers(shape: Shape, endpoints: &str) -> Result<Fleet, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut watchers = Vec::new();
        for w in 0..shape.watcher_processes {
            let names: Vec<usize> = (0..shape.names)
                .filter(|n| n % shape.watcher_processes == w)
                .collect();
            let mut args = vec!["scale-watch".to_string(), endpoints.to_string()];
            args.extend(names.iter().map(|&n| name(n)));
            let mut child = spawn(&exe, &args)?;
            let first = child.ask("counts", ASK).map_err(|e| e.to_string())?;
            if !first.starts_with("counts") {
                return Err(format!("watcher process {w}: {first}"));
            }
            watchers.push(WatcherProcess { child, names });
        }
        Ok(Fleet {
            shape,
            exe,
            endpoints: endpoints.to_string(),
            providers: Vec::new(),
            watchers,
        })
    }

    /// Starts every provider process at once and waits for each to have
    /// registered; returns the slowest one's own connect-and-register time.
    pub fn start_providers(&mut self) -> Result<Duration, String> {
        let s = self.shape;
        for i in 0..s.processes {
            let args = [
                "scale-provider".to_string(),
                self.endpoints.clone(),
                name(i % s.names),
                (i * s.per_process).to_string(),
                s.per_process.to_string(),
                s.ttl.to_string(),
            ];
            let child = spawn(&self.exe, &args)?;
            self.providers.push(Provider {
                child,
                name: i % s.names,
                alive: true,
            });
        }
        let mut slowest = Duration::ZERO;
        for (i, p) in self.providers.iter_mut().enumerate() {
            let answer = p
                .child
                .ask("ready", Duration::from_secs(120))
                .map_err(|e| format!("provider {i}: {e}"))?;
            let ms: u64 = answer
                .strip_prefix("ready ")
                .and_then(|ms| ms.parse().ok())
                .ok_or_else(|| format!("provider {i}: {answer}"))?;
            slowest = slowest.max(Duration::from_millis(ms));
        }
        Ok(slowest)
    }

    /// Instances each name should have now, from the living providers.
    fn expected(&self) -> Vec<usize> {
        let mut per_name = vec![0; self.shape.names];
        for p in self.providers.iter().filter(|p| p.alive) {
            per_name[p.name] += self.shape.per_process;
        }
        per_name
    }

    /// Whether every watcher holds exactly the living providers' instances.
    pub fn converged(&mut self) -> Result<bool, String> {
        let expected = self.expected();
        for (w, proc_) in self.watchers.iter_mut().enumerate() {
            let answer = proc_
                .child
                .ask("counts", ASK)
                .map_err(|e| format!("watcher process {w}: {e}"))?;
            let counts: Vec<usize> = answer
                .split_whitespace()
                .skip(1)
                .filter_map(|c| c.parse().ok())
                .collect();
            if counts.len() != proc_.names.len() {
                return Err(format!("watcher process {w}: {answer}"));
            }
            if proc_
                .names
                .iter()
                .zip(&counts)
                .any(|(&n, &c)| expected[n] != c)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Polls until every watcher converged; how long that took from `since`.
    pub fn wait_converged(&mut self, since: Instant, limit: Duration) -> Result<Duration, String> {
        loop {
            if self.converged()? {
                return Ok(since.elapsed());
            }
            if since.elapsed() > limit {
                return Err(format!("watchers not converged after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs every `step`th provider process (10 % for 10); how many.
    pub fn kill_every(&mut self, step: usize) -> usize {
        let mut killed = 0;
        for p in self.providers.iter_mut().step_by(step) {
            p.child.kill();
            p.alive = false;
            killed += 1;
        }
        killed
    }

    /// Instances the living providers hold.
    pub fn living_instances(&self) -> usize {
        self.expected().iter().sum()
    }

    /// Asks every process to quit (providers close their clients), then
    /// reaps them.
    pub fn stop(mut self) {
        for p in self.providers.iter_mut().filter(|p| p.alive) {
            let _ = p.child.send("quit");
        }
        for p in &mut self.providers {
            p.child.stop("quit", Duration::from_secs(15));
        }
        for w in &mut self.watchers {
            w.child.stop("quit", Duration::from_secs(5));
        }
    }
}
