//! One dripgate replica: the built binary as a child process, restarted after a SIGKILL, its
//! config file rewritten for a phase switch or a SIGHUP reload, and everything it ever printed
//! kept for the password search.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// What every replica's config is made from.
pub struct Shared {
    pub dir: PathBuf,
    pub legacy: SocketAddr,
    pub store: PathBuf,
    /// The ledger's URL for each replica (through its own relay).
    pub ledger_urls: Vec<String>,
    pub kinde_url: String,
    pub kinde_client_id: String,
    pub kinde_secret: String,
    pub fingerprint_key: String,
}

pub struct Replica {
    pub name: String,
    /// Its place among the replicas (and its relay's).
    pub index: usize,
    child: Option<Child>,
    pub listen: Option<SocketAddr>,
    pub admin: Option<String>,
    /// What the process (every incarnation) printed since the last password search took it.
    pub out: Arc<Mutex<String>>,
    pub starts: u32,
}

/// The route target the soak's replicas redirect migrated users to.
pub const ROUTE_TEMPLATE: &str = "https://auth.example.test/login?login_hint={login_hint}";

/// The lease, shorter than the provider's request timeout so a delayed write outlives it.
pub const LEASE_MS: u64 = 1000;

impl Replica {
    pub fn new(name: &str, index: usize) -> Self {
        Self {
            name: name.to_owned(),
            index,
            child: None,
            listen: None,
            admin: None,
            out: Arc::default(),
            starts: 0,
        }
    }

    pub fn config_path(&self, shared: &Shared) -> PathBuf {
        shared.dir.join(format!("{}.toml", self.name))
    }

    pub fn audit_path(&self, shared: &Shared) -> PathBuf {
        shared.dir.join(format!("audit-{}.jsonl", self.name))
    }

    /// Writes the config file with `phase`.
    pub fn write_config(&self, shared: &Shared, phase: &str) {
        let text = format!(
            r#"
[server]
worker_threads = 1

[upstream]
url = "http://{legacy}"

[log]
format = "json"
level = "dripgate=trace,info"

[[signin.routes]]
method = "POST"
path = "/signin"
body = "form"
identifier_field = "email"
password_field = "password"
legacy_failure = {{ status = [200], success_cookie = "session" }}

[legacy]
preset = "generic"
database_url = "sqlite://{store}"

[hash]
pool_size = 1

[ledger]
url = "{ledger}"
lease = "{lease}ms"
query_timeout = "1s"
counts_interval = "0s"
fingerprint_key = "{fingerprint_key}"

[audit]
file = "{audit}"

[migration]
phase = "{phase}"
replica_id = "{name}"
on_existing_user = "skip"
route = {{ mode = "redirect", url_template = "{template}" }}

[provider]
kind = "kinde"

[provider.kinde]
base_url = "{kinde}"
client_id = "{client_id}"
client_secret = {{ env = "TEST_KINDE_SECRET" }}
bcrypt_cost = 4

[provider.http]
request_timeout = "2s"
deadline = "3s"

[provider.limits]
requests_per_second = 1000
burst = 1000
max_attempts = 2
initial_backoff = "20ms"
max_backoff = "100ms"
max_retry_after = "1s"
"#,
            legacy = shared.legacy,
            store = shared.store.display(),
            ledger = shared.ledger_urls[self.index],
            lease = LEASE_MS,
            fingerprint_key = shared.fingerprint_key,
            audit = self.audit_path(shared).display(),
            name = self.name,
            template = ROUTE_TEMPLATE,
            kinde = shared.kinde_url,
            client_id = shared.kinde_client_id,
        );
        std::fs::write(self.config_path(shared), text).unwrap();
    }

    /// Starts the binary (ports of its own choosing) and waits for its start-up line; `Err`
    /// with its output when it did not start.
    pub fn start(&mut self, shared: &Shared) -> Result<(), String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dripgate"))
            .args(["serve", "--config"])
            .arg(self.config_path(shared))
            .env("DRIPGATE_SERVER__LISTEN", "127.0.0.1:0")
            .env("DRIPGATE_ADMIN__LISTEN", "127.0.0.1:0")
            .env("DRIPGATE_SHUTDOWN__DELAY", "0s")
            .env("TEST_KINDE_SECRET", &shared.kinde_secret)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.starts += 1;
        copy_lines(BufReader::new(child.stderr.take().unwrap()), &self.out);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut start = None;
        for line in lines.by_ref().take(500) {
            let Ok(line) = line else { break };
            self.push(&line);
            if line.contains("dripgate serving") {
                start = Some(line);
                break;
            }
        }
        let Some(start) = start else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} did not start", self.name));
        };
        copy_rest(lines, &self.out);
        let v: serde_json::Value = serde_json::from_str(&start).map_err(|e| e.to_string())?;
        self.listen = v["listen"].as_str().and_then(|a| a.parse().ok());
        self.admin = v["admin"].as_str().map(|a| format!("http://{a}"));
        self.child = Some(child);
        Ok(())
    }

    fn push(&self, line: &str) {
        let mut o = self.out.lock().unwrap();
        o.push_str(line);
        o.push('\n');
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn url(&self) -> Option<String> {
        self.listen
            .filter(|_| self.running())
            .map(|a| format!("http://{a}"))
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.listen = None;
        self.admin = None;
    }

    /// SIGHUP: the config file is read again.
    pub fn reload(&self) {
        self.signal("-HUP");
    }

    /// SIGTERM and wait (the end of the soak).
    pub fn stop(&mut self) {
        self.signal("-TERM");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

fn copy_lines<R: std::io::Read + Send + 'static>(reader: BufReader<R>, out: &Arc<Mutex<String>>) {
    copy_rest(reader.lines(), out);
}

fn copy_rest<R: BufRead + Send + 'static>(lines: std::io::Lines<R>, out: &Arc<Mutex<String>>) {
    let out = out.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut o = out.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    });
}
