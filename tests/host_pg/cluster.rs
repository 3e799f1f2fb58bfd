//! A PostgreSQL cluster a test makes for itself: `initdb` into a temporary directory, a free port,
//! `ssl = on` with a CA and a server certificate made by the `openssl` CLI (valid for 127.0.0.1
//! only), a TLS-only `pg_hba.conf` (plus a `pwuser` role that must give a password), and trust
//! over its Unix socket for the test's own administration. Run as the `postgres` account when the
//! tests run as root (PostgreSQL refuses root).

use crate::support::temp_dir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Password of the cluster's `pwuser` role (the only role that must give one).
pub const PASSWORD: &str = "right-pw-4711";

/// A PostgreSQL cluster of its own: TLS-only over TCP, trust over its Unix socket (for the
/// test's own administration). Stopped (fast shutdown) when dropped.
pub struct Cluster {
    dir: PathBuf,
    /// The TCP port it listens on (127.0.0.1).
    pub port: u16,
    bin: PathBuf,
    child: Option<Child>,
}

/// `uid`/`gid` of the `postgres` account when running as root (PostgreSQL refuses root).
fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    Some((id("-u")?, id("-g")?))
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql/*/bin (scripts/services.sh)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Makes `ca.crt` and a `server.crt`/`server.key` it signed, valid for 127.0.0.1 only.
fn make_certificates(dir: &Path) {
    let ossl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    ossl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "3"],
            &["-subj", "/CN=edgelog test CA"],
        ]
        .concat(),
    );
    ossl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "3",
        "-extfile",
        "server.ext",
    ]);
}

impl Cluster {
    /// initdb, certificates, TLS-only `pg_hba.conf`, start, and a `pwuser` role with a password.
    pub fn start() -> Cluster {
        let dir = temp_dir("edge-pg-tls-");
        let bin = pg_bin();
        make_certificates(&dir);
        if let Some((uid, gid)) = postgres_ids() {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir));
        }
        run(Command::new("chmod")
            .arg("0600")
            .arg(dir.join("server.key")));
        run(as_postgres(
            Command::new(bin.join("initdb"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(dir.join("data")),
        ));
        let d = dir.display();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nssl = on\n\
             ssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\nfsync = off\n\
             max_connections = 60\nshared_buffers = 16MB\n"
        );
        let conf_path = dir.join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\n\
             hostssl all pwuser 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let mut cluster = Cluster {
            dir,
            port: free_port(),
            bin,
            child: None,
        };
        cluster.spawn();
        let mut admin = cluster.admin();
        admin
            .batch_execute(&format!("CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'"))
            .unwrap();
        admin.batch_execute("CREATE DATABASE edge_tls").unwrap();
        cluster
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn spawn(&mut self) {
        let child = as_postgres(
            Command::new(self.bin.join("postgres"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-p")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .spawn()
        .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_admin().is_err() {
            assert!(Instant::now() < deadline, "test cluster did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (as an operator's restart does): sessions are ended, the port closes.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn try_admin(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
    }

    /// A superuser session over the Unix socket.
    pub fn admin(&self) -> postgres::Client {
        self.try_admin().expect("admin connection over the socket")
    }

    /// `postgres://user@host:port/db?query`.
    pub fn url(&self, user: &str, host: &str, db: &str, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("postgres://{user}@{host}:{}/{db}{q}", self.port)
    }

    /// Path of the CA certificate that signed the server's.
    pub fn ca(&self) -> String {
        self.dir.join("ca.crt").display().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
