//! A real TLS front for tests of loadgen over HTTPS: a throwaway CA and a server certificate for
//! `127.0.0.1` made with the `openssl` command at test time, and `socat` terminating TLS on a free
//! loopback port and forwarding plain TCP to the service (as an ingress or a CDN would).
//! Both tools must be on `PATH`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// PEM files of a test CA and of a server certificate it signed for `127.0.0.1`/`localhost`.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA certificate (what `--ca-cert` is given).
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Makes a CA and a server certificate in `dir` (valid for two days).
pub fn make_certs(dir: &Path) -> Result<TestCerts> {
    std::fs::create_dir_all(dir)?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=edgelog test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca)?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )?;
    Ok(TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

/// `socat` terminating TLS in front of a plain-HTTP service; killed when dropped.
pub struct Terminator {
    child: Child,
    /// The HTTPS base URL, e.g. `https://127.0.0.1:41234`.
    pub url: String,
}

impl Terminator {
    /// Listens with TLS on a free loopback port and forwards every connection to `backend`
    /// (`host:port`).
    pub fn start(certs: &TestCerts, backend: &str) -> Result<Terminator> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            certs.cert.display(),
            certs.key.display()
        );
        let child = Command::new("socat")
            .arg(listen)
            .arg(format!("TCP:{backend}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting socat (is it installed?)")?;
        let mut t = Terminator {
            child,
            url: format!("https://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = t.child.try_wait()? {
                bail!("socat exited with {status} before listening");
            }
            if Instant::now() > deadline {
                bail!("socat did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(t)
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
