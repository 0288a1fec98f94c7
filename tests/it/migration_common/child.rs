//! `dripgate serve` as a child process of the test (the built binary), with its output captured.

use super::*;

/// A running `dripgate serve` child process and its addresses.
pub struct ChildDripgate {
    pub child: Child,
    pub listen: SocketAddr,
    /// `http://` address of the admin listener.
    pub admin: String,
}

impl ChildDripgate {
    /// Starts the binary with `config` on ports of its own choosing and waits for its start-up
    /// line; everything it prints (stdout and stderr) is appended to `out`.
    pub fn spawn(config: &Path, fake: &Fake, out: &Arc<Mutex<String>>) -> Self {
        let (secret_var, secret) = fake.child_secret();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dripgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env("DRIPGATE_SERVER__LISTEN", "127.0.0.1:0")
            .env("DRIPGATE_ADMIN__LISTEN", "127.0.0.1:0")
            .env("DRIPGATE_SHUTDOWN__DELAY", "0s")
            .env(secret_var, secret)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        copy_lines(BufReader::new(child.stderr.take().unwrap()).lines(), out);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut start = None;
        for line in lines.by_ref().take(200) {
            let line = line.unwrap();
            out.lock().unwrap().push_str(&format!("{line}\n"));
            if line.contains("dripgate serving") {
                start = Some(line);
                break;
            }
        }
        let start = start.unwrap_or_else(|| panic!("no start-up line: {}", out.lock().unwrap()));
        copy_lines(lines, out);
        let v: serde_json::Value = serde_json::from_str(&start).unwrap();
        Self {
            child,
            listen: v["listen"].as_str().unwrap().parse().unwrap(),
            admin: format!("http://{}", v["admin"].as_str().unwrap()),
        }
    }

    /// `http://` address of the public listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// Appends every line from `lines` to `out`, on a thread of its own.
fn copy_lines<R: BufRead + Send + 'static>(lines: std::io::Lines<R>, out: &Arc<Mutex<String>>) {
    let out = out.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut o = out.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    });
}
