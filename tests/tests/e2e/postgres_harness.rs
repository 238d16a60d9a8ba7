//! The PostgreSQL harness itself (`halftone_tests::postgres`): a cluster starts, a real client
//! connects and queries, the cluster stops and starts again on the same URL, and two clusters
//! run side by side. Skipped, with a SKIPPED line, where PostgreSQL cannot be had.

use std::time::{Duration, Instant};

use halftone_tests::postgres_or_skip;
use tokio_postgres::{Client, NoTls};

/// A connected client; the connection task runs on the test's runtime.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn select_one(client: &Client) -> i32 {
    client.query_one("SELECT 1", &[]).await.expect("SELECT 1").get(0)
}

#[tokio::test]
async fn a_cluster_answers_a_real_client() {
    let pg = postgres_or_skip!();
    let url = pg.url();
    assert!(url.starts_with("postgres://halftone@127.0.0.1:"), "{url}");
    let client = connect(&url).await.expect("connect");
    assert_eq!(select_one(&client).await, 1);

    // The settings the durability tests rely on.
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "on");
    let listen: String = client.query_one("SHOW listen_addresses", &[]).await.unwrap().get(0);
    assert_eq!(listen, "127.0.0.1");
    let db: String = client.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
    assert_eq!(db, "halftone");
}

#[tokio::test]
async fn a_stopped_cluster_refuses_then_comes_back_with_its_data() {
    let mut pg = postgres_or_skip!();
    let url = pg.url();
    let client = connect(&url).await.unwrap();
    client.batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42);").await.unwrap();

    pg.stop().expect("stop");
    assert!(!pg.is_running());
    assert!(client.query_one("SELECT 1", &[]).await.is_err(), "the old session is gone");
    assert!(connect(&url).await.is_err(), "nothing listens while stopped");

    pg.start_again().expect("start again");
    assert_eq!(pg.url(), url, "same port, same URL");
    let client = connect(&url).await.expect("reconnect");
    let n: i32 = client.query_one("SELECT n FROM kept", &[]).await.unwrap().get(0);
    assert_eq!(n, 42);

    // A crash (immediate stop) keeps committed rows too: the start recovers from the WAL.
    client.batch_execute("INSERT INTO kept VALUES (43);").await.unwrap();
    pg.crash().expect("crash");
    pg.start_again().expect("start after crash");
    let client = connect(&url).await.unwrap();
    let count: i64 = client.query_one("SELECT count(*) FROM kept", &[]).await.unwrap().get(0);
    assert_eq!(count, 2);

    pg.restart().expect("restart");
    let client = connect(&url).await.unwrap();
    assert_eq!(select_one(&client).await, 1);
}

#[tokio::test]
async fn two_clusters_run_side_by_side() {
    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(halftone_tests::postgres::TempPostgres::start);
        let b = s.spawn(halftone_tests::postgres::TempPostgres::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(unavailable), _) | (_, Err(unavailable)) => {
            unavailable.skip_or_fail("postgres_harness::two_clusters_run_side_by_side");
            return;
        }
    };
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());

    let ca = connect(&a.url()).await.unwrap();
    let cb = connect(&b.url()).await.unwrap();
    ca.batch_execute("CREATE TABLE only_in_a (n int)").await.unwrap();
    assert!(cb.query("SELECT * FROM only_in_a", &[]).await.is_err(), "separate clusters");

    // Dropping one leaves the other running, and removes its files.
    let dir_a = a.data_dir().to_owned();
    drop(a);
    assert!(!dir_a.exists());
    assert_eq!(select_one(&cb).await, 1);
}
