//! A database of its own for each test (`envoi_t_<random>`), made through
//! `DATABASE_URL` and dropped by a guard when the test ends, even when it fails. Without
//! `DATABASE_URL` a test that needs one says so loudly and returns (or fails, with
//! `ENVOI_REQUIRE_DATABASE=1`).

use std::io::Write as _;
use std::net::SocketAddr;

use sqlx::Connection as _;

/// Runs `work` on a runtime of its own, on a thread of its own, so that it works from
/// any context (a test, a `Drop` during a panic).
pub fn block_on<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(work())
    })
    .join()
    .expect("the database thread does not panic")
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..path_start])
}

/// Whether a test that needs Postgres can run: `DATABASE_URL`, or a loud skip (a panic
/// when `ENVOI_REQUIRE_DATABASE=1`).
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("ENVOI_REQUIRE_DATABASE").is_ok_and(|v| v == "1") {
                panic!("{test}: DATABASE_URL is not set and ENVOI_REQUIRE_DATABASE=1");
            }
            // Straight to the process's stderr: `eprintln!` would be captured, and hidden,
            // by the test harness for a test that passes.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: DATABASE_URL is not set, so the Postgres test `{test}` did not run. \
                 Set DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run it. ***"
            );
            None
        }
    }
}

/// A database of its own for one test, dropped (WITH (FORCE)) when the guard drops.
pub struct Db {
    pub name: String,
    /// The URL of this test's database.
    pub url: String,
    admin_url: String,
}

impl Db {
    /// Creates `envoi_t_<random>`, or returns `None` (after a loud message) without
    /// `DATABASE_URL`.
    pub fn create(test: &str) -> Option<Self> {
        let admin_url = database_url(test)?;
        let name = format!("envoi_t_{:016x}", rand::random::<u64>());
        let db = Self {
            url: with_database(&admin_url, &name),
            name: name.clone(),
            admin_url: admin_url.clone(),
        };
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
            let _ = conn.close().await;
        });
        Some(db)
    }

    /// The host and port of the Postgres server, for the proxy.
    pub fn server_address(&self) -> SocketAddr {
        use sqlx::postgres::PgConnectOptions;
        let options: PgConnectOptions = self.admin_url.parse().expect("DATABASE_URL parses");
        let host = options.get_host().to_owned();
        let port = options.get_port();
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .expect("the database host resolves")
            .next()
            .expect("the database host has an address")
    }

    /// Runs one statement; its result as sqlx gives it.
    pub fn try_exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let result = sqlx::raw_sql(&sql).execute(&mut conn).await;
            let _ = conn.close().await;
            result.map(|done| done.rows_affected())
        })
    }

    #[track_caller]
    pub fn exec(&self, sql: &str) -> u64 {
        self.try_exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A query whose one column is text: its rows.
    #[track_caller]
    pub fn strings(&self, sql: &str) -> Vec<String> {
        let (url, query) = (self.url.clone(), sql.to_owned());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let rows = sqlx::query_scalar::<_, String>(&query).fetch_all(&mut conn).await;
            let _ = conn.close().await;
            rows
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A query of one bigint.
    #[track_caller]
    pub fn int(&self, sql: &str) -> i64 {
        let (url, query) = (self.url.clone(), sql.to_owned());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let value = sqlx::query_scalar::<_, i64>(&query).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            value
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Drops this test's database (its sessions ended) and creates it again, empty: a
    /// restore gone wrong, as a replica sees it.
    pub fn recreate(&self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
            for sql in [
                format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
                format!("CREATE DATABASE \"{name}\""),
            ] {
                sqlx::query(&sql)
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            let _ = conn.close().await;
        });
    }

    /// Terminates every other session on this test's database (envoi's pool and
    /// listener); returns how many.
    pub fn terminate_sessions(&self) -> usize {
        self.strings(&format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
        .len()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(async move {
                    let mut conn = sqlx::PgConnection::connect(&admin_url)
                        .await
                        .map_err(|e| e.to_string())?;
                    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = conn.close().await;
                    dropped.map(|_| ())
                })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: cannot drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}
