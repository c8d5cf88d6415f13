//! A Redis for the tests: `NEXUS_TEST_REDIS_URL` when it is set, otherwise a `redis-server` of
//! the test's own on a free loopback port, in a temporary directory, with no persistence,
//! stopped when the handle is dropped. Without `redis-server` the test fails, saying how to
//! install it (`scripts/test.sh` does).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub url: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// The Redis the tests use: `NEXUS_TEST_REDIS_URL`, or one of this test's own.
    pub fn start() -> RedisServer {
        match std::env::var("NEXUS_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => RedisServer { url, port: 0, dir: PathBuf::new(), child: None },
            _ => RedisServer::own(),
        }
    }

    /// A `redis-server` of this test's own (a test that stops and restarts it needs one).
    pub fn own() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = std::env::temp_dir().join(format!("nexus-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
        let mut server = RedisServer { url: format!("redis://127.0.0.1:{port}/0"), port, dir, child: None };
        server.restart();
        server
    }

    /// Stops this test's `redis-server` (what it held is gone: it persists nothing).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("only a redis-server of the test's own is stopped");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts this test's `redis-server` again, on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is running already");
        let started = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = started.unwrap_or_else(|e| {
            panic!(
                "the Redis tests need redis-server ({e}): install it with `apt-get install -y redis-server` \
                 (scripts/test.sh does), or set NEXUS_TEST_REDIS_URL to a Redis they may use"
            )
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not answer on port {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let mut reply = [0u8; 5];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG"
    }

    /// A connection for looking at (and tampering with) what the store wrote.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection()).expect("a connection to the test Redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if self.port != 0 {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
