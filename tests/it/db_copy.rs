//! `paperboy db copy` from the SQLite file of a real run (fetched fixture day, subscribers
//! with profiles, digests planned and sent through the file transport, votes, source state) to
//! a fresh PostgreSQL database: every table arrives whole (the sentence vectors too, so the
//! target ranks by meaning without embedding again), the commands read the same data
//! from both, a non-empty target is refused without `--force`, and new rows on the target get
//! fresh ids (the identity sequences were moved past the copied ones).
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (skips with the reason, fails under
//! `PAPERBOY_REQUIRE_ALL=1`). The source stays SQLite in both passes: that is what is moved.

use crate::common::*;
use crate::delivery_support::Db;

const DAY1: &str = "2024-10-25";
const FETCH1: &str = "2024-10-25T06:00:00Z";
const SEND1: &str = "2024-10-25T09:00:00Z";

/// Rows per copied table, by the store's own list of tables.
fn counts(db: &Db) -> Vec<(&'static str, i64)> {
    paperboy::store::TABLES
        .iter()
        .map(|t| {
            (
                t.name,
                db.scalar(&format!("SELECT COUNT(*) FROM {}", t.name)),
            )
        })
        .collect()
}

#[test]
fn db_copy_moves_a_real_sqlite_database_to_postgresql() {
    let test = "db_copy_moves_a_real_sqlite_database_to_postgresql";
    let Some(pg) = PgDatabase::create_or_skip(test) else {
        return;
    };
    let hf = FixtureServer::start();
    hf.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    let app = TestApp::builder()
        .hf(&hf)
        .sqlite_only("it is the SQLite source of a copy to PostgreSQL")
        // The embedded default, so that the copy carries the abstracts' sentence vectors.
        .highlight_sentences(true)
        .build();

    // A real run: fetch, subscribers (one with a profile), digests sent, a few votes.
    app.paperboy(["fetch", "--date", DAY1])
        .at(FETCH1)
        .run()
        .assert_success();
    for (i, interests) in ["memory", "\"contrastive loss\"", "language models"]
        .iter()
        .enumerate()
    {
        app.add_confirmed_subscriber(FETCH1, &format!("reader{i}@example.org"), interests);
    }
    app.paperboy([
        "subscriber",
        "add",
        "ada@example.org",
        "--interests",
        "diffusion",
        "--categories",
        "cs.LG",
        "--confirmed",
    ])
    .at(FETCH1)
    .run()
    .assert_success();
    app.paperboy(["send", "--now"])
        .at(SEND1)
        .run()
        .assert_success();
    let source = Db::open(&app);
    source.exec(
        "INSERT INTO feedback (subscriber_id, paper_id, vote, created_at)
         SELECT subscriber_id, paper_id, 1, 1729846800000 FROM delivery_papers",
    );
    let before = counts(&source);
    for table in [
        "papers",
        "paper_sources",
        "subscribers",
        "subscriber_profiles",
        "deliveries",
        "delivery_papers",
        "feedback",
        "source_state",
        "paper_vectors",
        "interest_vectors",
    ] {
        let n = before.iter().find(|(t, _)| *t == table).unwrap().1;
        assert!(n > 0, "the real run left no row in {table}: {before:?}");
    }

    let from = app.database_url.clone();
    let out = app
        .paperboy(["db", "copy", "--from", &from, "--to", &pg.url])
        .run();
    println!("{out}");
    out.assert_success();
    assert!(out.stdout.contains("copied "), "{out}");
    let target = Db::open_url(&pg.url);
    assert_eq!(counts(&target), before, "every table arrives whole");
    // The abstracts' sentence vectors (a column of paper_vectors) arrive byte for byte.
    let sentences = "SELECT COUNT(*) FROM paper_vectors WHERE sentences IS NOT NULL";
    let sentence_bytes = "SELECT COALESCE(SUM(LENGTH(sentences)), 0) FROM paper_vectors";
    assert!(source.scalar(sentences) > 0, "fetch embedded the sentences");
    assert_eq!(target.scalar(sentences), source.scalar(sentences));
    assert_eq!(target.scalar(sentence_bytes), source.scalar(sentence_bytes));

    // The commands see the same data on both: papers, subscribers with profiles, deliveries.
    let on_pg = TestApp::builder().hf(&hf).database_url(&pg.url).build();
    for args in [
        vec!["papers", "--format", "json"],
        vec!["subscriber", "export"],
        vec!["deliveries", "--format", "json"],
    ] {
        let a = app.paperboy(&args).at(SEND1).run();
        let b = on_pg.paperboy(&args).at(SEND1).run();
        a.assert_success();
        b.assert_success();
        assert_eq!(
            a.stdout,
            b.stdout,
            "`{}` differs after the copy",
            args.join(" ")
        );
    }

    // A second copy into the now non-empty target is refused, naming --force.
    let again = app
        .paperboy(["db", "copy", "--from", &from, "--to", &pg.url])
        .run();
    again.assert_failure();
    assert!(
        again.stderr.contains("is not empty") && again.stderr.contains("--force"),
        "{again}"
    );
    assert_eq!(counts(&target), before, "the refused copy changed nothing");
    let forced = app
        .paperboy(["db", "copy", "--from", &from, "--to", &pg.url, "--force"])
        .run();
    forced.assert_success();
    assert_eq!(counts(&target), before, "--force replaces, never doubles");

    // New rows on PostgreSQL take ids after the copied ones (sequences were reset).
    let max_id = target.scalar("SELECT MAX(id) FROM subscribers");
    on_pg.add_confirmed_subscriber(SEND1, "new@example.org", "memory");
    assert_eq!(
        target.scalar("SELECT id FROM subscribers WHERE email = 'new@example.org'"),
        max_id + 1
    );
}
