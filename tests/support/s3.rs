//! A real S3-compatible server: the installed `s3s-fs` binary on a free 127.0.0.1 port with an
//! access key and secret (so SigV4 signatures are really checked), storing objects as files
//! under a temporary root with one bucket directory. Tests seed objects (with an age) and look
//! at what is stored straight on disk.
//!
//! ```ignore
//! let s3 = s3::S3Server::start();
//! // endpoint: s3.endpoint(), bucket: s3.bucket, keys: s3.access_key / s3.secret_key
//! s3.seed("backups/db/a.dump", &[0; 1024], Duration::from_secs(3600));
//! assert!(s3.objects().is_empty());
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::{find_program, free_port, wait_for_port, ChildGuard};

/// The bucket every test server has.
pub const BUCKET: &str = "probe-artifacts";

/// A running s3s-fs.
pub struct S3Server {
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    /// Root directory: `ROOT/BUCKET/KEY` is an object.
    pub root: PathBuf,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts s3s-fs with a fresh root holding [`BUCKET`]; waits for its port.
    pub fn start() -> S3Server {
        let program =
            find_program("s3s-fs").expect("s3s-fs is not installed: run scripts/setup.sh");
        let mut last = String::new();
        for _ in 0..3 {
            match S3Server::try_start(&program) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("s3s-fs did not start: {last}");
    }

    fn try_start(program: &Path) -> Result<S3Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-s3-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(BUCKET)).map_err(|e| e.to_string())?;
        let port = free_port();
        let access_key = "flowprobe-test-access".to_string();
        let secret_key = format!("flowprobe-test-secret-{}", std::process::id());
        let mut cmd = Command::new(program);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(&root);
        let mut guard = ChildGuard::spawn("s3s-fs", cmd, &dir.path().join("s3s-fs.log"))?;
        if let Err(e) = wait_for_port(port, Duration::from_secs(5)) {
            let exited = guard.child.try_wait().ok().flatten();
            guard.stop();
            return Err(format!("{e}; exit {exited:?}:\n{}", guard.log_text()));
        }
        Ok(S3Server {
            port,
            access_key,
            secret_key,
            bucket: BUCKET.to_string(),
            root,
            guard,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn log_text(&self) -> String {
        self.guard.log_text()
    }

    /// Where the object `key` is stored.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }

    /// Writes an object straight to disk, last modified `age` ago (a backup made earlier, a
    /// probe object leaked by a killed run).
    pub fn seed(&self, key: &str, bytes: &[u8], age: Duration) {
        let p = self.object_path(key);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        self.set_age(key, age);
    }

    /// Sets an object's last-modified time to `age` ago.
    pub fn set_age(&self, key: &str, age: Duration) {
        let f = std::fs::File::options()
            .write(true)
            .open(self.object_path(key))
            .unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    /// Every object key in the bucket, from the disk, sorted.
    pub fn objects(&self) -> Vec<String> {
        let base = self.root.join(&self.bucket);
        let mut out = Vec::new();
        let mut dirs = vec![base.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if let Ok(rel) = p.strip_prefix(&base) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    /// Unfinished multipart uploads' part files (s3s-fs keeps them in the root).
    pub fn pending_parts(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload_id-"))
            .collect()
    }
}
