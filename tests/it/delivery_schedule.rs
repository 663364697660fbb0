//! Per-subscriber schedules, run through the real binary at chosen instants (`PAPERBOY_NOW`):
//! time zones across their DST changes (America/Los_Angeles, Pacific/Auckland, both ways),
//! send times that fall in a DST gap or fold, weekly and weekdays frequencies, a paused
//! subscriber resuming, and downtime. Each `paperboy send` is one round of what the daemon
//! does every minute: plan who is due now, then send.

use crate::common::*;
use crate::delivery_support::*;

/// One subscriber with the file transport (the test is about when, not how).
fn app_with(email: &str, time: &str, tz: &str, frequency: &str) -> TestApp {
    let app = TestApp::builder().build();
    app.paperboy([
        "subscriber",
        "add",
        email,
        "--interests",
        INTERESTS,
        "--confirmed",
        "--time",
        time,
        "--timezone",
        tz,
        "--frequency",
        frequency,
    ])
    .at("2024-01-01T00:00:00Z")
    .run()
    .assert_success();
    app
}

fn send_at(app: &TestApp, now: &str) {
    let out = app.paperboy(["send"]).at(now).run();
    assert!(
        out.success(),
        "paperboy send at {now} failed (nothing here can fail to send):\n{out}"
    );
}

/// (digest date, planned at as RFC 3339 UTC) of every delivery, oldest first.
fn deliveries(app: &TestApp) -> Vec<(String, String)> {
    let out = app
        .paperboy(["deliveries", "--format", "json", "--limit", "1000"])
        .at("2030-01-01T00:00:00Z")
        .run();
    out.assert_success();
    let mut rows: Vec<(String, String)> = out
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            let ms = d["planned_at"].as_i64().expect("planned_at");
            let at = chrono::DateTime::from_timestamp_millis(ms).expect("time");
            (
                d["digest_date"].as_str().expect("date").to_string(),
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows
}

fn dates(app: &TestApp) -> Vec<String> {
    deliveries(app).into_iter().map(|(d, _)| d).collect()
}

/// Runs `send` at each instant; after each, checks how many deliveries exist.
fn probe(app: &TestApp, steps: &[(&str, usize)]) {
    for (now, expected) in steps {
        send_at(app, now);
        assert_eq!(
            deliveries(app).len(),
            *expected,
            "after a run at {now}: {:?}",
            deliveries(app)
        );
    }
}

#[test]
fn los_angeles_gets_its_digest_at_seven_local_on_both_sides_of_both_dst_changes() {
    let app = app_with("la@example.net", "07:00", "America/Los_Angeles", "daily");
    probe(
        &app,
        &[
            // Sat 9 Mar 2024, PST (UTC-8): 07:00 local is 15:00Z.
            ("2024-03-09T14:59:00Z", 0),
            ("2024-03-09T15:00:00Z", 1),
            ("2024-03-09T23:00:00Z", 1),
            // Sun 10 Mar: clocks went forward at 02:00; 07:00 PDT (UTC-7) is 14:00Z.
            ("2024-03-10T13:59:00Z", 1),
            ("2024-03-10T14:00:00Z", 2),
            ("2024-03-10T15:00:00Z", 2),
            // Sat 2 Nov, PDT: 14:00Z.
            ("2024-11-02T13:59:00Z", 2),
            ("2024-11-02T14:00:00Z", 3),
            // Sun 3 Nov: clocks went back at 02:00; 07:00 PST is 15:00Z, not 14:00Z.
            ("2024-11-03T14:00:00Z", 3),
            ("2024-11-03T14:59:00Z", 3),
            ("2024-11-03T15:00:00Z", 4),
            ("2024-11-03T20:00:00Z", 4),
        ],
    );
    assert_eq!(
        dates(&app),
        ["2024-03-09", "2024-03-10", "2024-11-02", "2024-11-03"]
    );
}

#[test]
fn auckland_gets_its_digest_at_seven_local_on_both_sides_of_both_dst_changes() {
    let app = app_with("akl@example.net", "07:00", "Pacific/Auckland", "daily");
    probe(
        &app,
        &[
            // Sat 6 Apr 2024, NZDT (UTC+13): 07:00 local is 18:00Z the day before.
            ("2024-04-05T17:59:00Z", 0),
            ("2024-04-05T18:00:00Z", 1),
            // Sun 7 Apr: DST ended at 03:00; 07:00 NZST (UTC+12) is 19:00Z.
            ("2024-04-06T18:00:00Z", 1),
            ("2024-04-06T18:59:00Z", 1),
            ("2024-04-06T19:00:00Z", 2),
            // Sat 28 Sep, NZST: 19:00Z the day before.
            ("2024-09-27T18:59:00Z", 2),
            ("2024-09-27T19:00:00Z", 3),
            // Sun 29 Sep: DST began at 02:00; 07:00 NZDT is 18:00Z.
            ("2024-09-28T17:59:00Z", 3),
            ("2024-09-28T18:00:00Z", 4),
            ("2024-09-28T19:00:00Z", 4),
        ],
    );
    assert_eq!(
        dates(&app),
        ["2024-04-06", "2024-04-07", "2024-09-28", "2024-09-29"]
    );
}

#[test]
fn a_send_time_in_the_spring_gap_goes_out_once_when_the_clock_jumps_past_it() {
    // 02:30 does not exist in Los Angeles on 10 Mar 2024: 01:59:59 PST is followed by 03:00 PDT.
    let app = app_with("gap@example.net", "02:30", "America/Los_Angeles", "daily");
    probe(
        &app,
        &[
            ("2024-03-10T09:59:00Z", 0), // 01:59 PST
            ("2024-03-10T10:00:00Z", 1), // 03:00 PDT: past 02:30, due
            ("2024-03-10T11:00:00Z", 1),
        ],
    );
    assert_eq!(dates(&app), ["2024-03-10"]);
}

#[test]
fn a_send_time_in_the_autumn_fold_goes_out_once_although_it_happens_twice() {
    // 01:30 happens twice in Los Angeles on 3 Nov 2024: at 08:30Z (PDT) and 09:30Z (PST).
    let app = app_with("fold@example.net", "01:30", "America/Los_Angeles", "daily");
    probe(
        &app,
        &[
            ("2024-11-03T08:29:00Z", 0),
            ("2024-11-03T08:30:00Z", 1),
            ("2024-11-03T09:30:00Z", 1),
            ("2024-11-03T09:45:00Z", 1),
        ],
    );
}

#[test]
fn weekly_subscribers_get_one_digest_a_week_on_their_day() {
    let app = app_with("weekly@example.net", "07:00", "Europe/Paris", "weekly:wed");
    // Mon 21 Oct .. Sun 3 Nov 2024, at 09:00Z (10:00 or 11:00 in Paris, DST ended 27 Oct).
    for day in 21..=34 {
        let date =
            chrono::NaiveDate::from_ymd_opt(2024, 10, 1).unwrap() + chrono::Duration::days(day - 1);
        send_at(&app, &format!("{date}T09:00:00Z"));
    }
    assert_eq!(dates(&app), ["2024-10-23", "2024-10-30"]);
}

#[test]
fn weekday_subscribers_get_nothing_at_the_weekend() {
    // Auckland: its local date is a day ahead of UTC at 09:00Z, and that local date counts.
    let app = app_with("wd@example.net", "07:00", "Pacific/Auckland", "weekdays");
    for day in 21..=27 {
        // 20:00Z on 20..26 Oct is 09:00 NZDT on 21..27 Oct (Mon..Sun).
        send_at(&app, &format!("2024-10-{:02}T20:00:00Z", day - 1));
    }
    assert_eq!(
        dates(&app),
        [
            "2024-10-21",
            "2024-10-22",
            "2024-10-23",
            "2024-10-24",
            "2024-10-25"
        ]
    );
}

#[test]
fn after_downtime_a_missed_digest_goes_out_once_not_once_per_missed_day() {
    let app = app_with("down@example.net", "07:00", "UTC", "daily");
    send_at(&app, "2024-10-21T07:05:00Z");
    // Down from the 22nd to the 25th at 11:00; back up:
    send_at(&app, "2024-10-25T11:00:00Z");
    send_at(&app, "2024-10-25T11:01:00Z");
    assert_eq!(dates(&app), ["2024-10-21", "2024-10-25"]);
}

/// Papers of day 1 first seen on 25 Oct; the 2026-schema paper first seen on 28 Oct.
fn paused_setup(max_age_days: &str) -> Option<(TestApp, FixtureServer, Db)> {
    let server = FixtureServer::start();
    server.set_day_fixture(DAY1, HF_DAY_2024_10_25);
    server.set_day_fixture("2024-10-28", HF_ITEM_2026_03);
    let app = TestApp::builder()
        .hf(&server)
        .extra_toml(&format!("[digest]\nmax_age_days = {max_age_days}\n"))
        .build();
    migrate(&app);
    fetch_day1(&app);
    app.paperboy(["fetch", "--date", "2024-10-28"])
        .at("2024-10-28T06:00:00Z")
        .run()
        .assert_success();
    let db = Db::open(&app);
    db.seed_subscribers(0, 1, "07:00", "UTC", "daily");
    Some((app, server, db))
}

fn rows(app: &TestApp) -> Vec<serde_json::Value> {
    let out = app
        .paperboy(["deliveries", "--format", "json"])
        .at("2030-01-01T00:00:00Z")
        .run();
    out.assert_success();
    let mut v = out.json().as_array().expect("array").clone();
    v.sort_by_key(|d| d["digest_date"].as_str().unwrap_or("").to_string());
    v
}

#[test]
fn a_paused_subscriber_gets_nothing_and_on_resume_one_digest_of_what_is_new() {
    let Some((app, _server, db)) = paused_setup("30") else {
        return;
    };
    send_at(&app, "2024-10-25T09:00:00Z");
    assert_eq!(rows(&app).len(), 1);
    assert_eq!(rows(&app)[0]["status"], "sent");
    db.exec("UPDATE subscribers SET status = 'paused'");
    for day in 26..=31 {
        send_at(&app, &format!("2024-10-{day}T09:00:00Z"));
    }
    assert_eq!(rows(&app).len(), 1, "nothing while paused");
    db.exec("UPDATE subscribers SET status = 'active'");
    send_at(&app, "2024-11-03T09:00:00Z");
    let r = rows(&app);
    assert_eq!(
        r.len(),
        2,
        "one digest on resume, not one per paused day: {r:?}"
    );
    assert_eq!(r[1]["digest_date"], "2024-11-03");
    assert_eq!(r[1]["status"], "sent");
    // Only the paper first seen since the last digest (the 28 Oct one); day-1 papers that did
    // not make the first digest are older than it and stay out.
    assert_eq!(r[1]["papers"], 1, "{r:?}");
    let last = app.outbox_messages();
    assert!(
        last.iter()
            .any(|m| String::from_utf8_lossy(&m.raw).contains("2602.23229")),
        "the resumed digest lists the new paper"
    );
}

#[test]
fn on_resume_the_window_is_bounded_by_the_maximum_age() {
    let Some((app, _server, db)) = paused_setup("3") else {
        return;
    };
    send_at(&app, "2024-10-25T09:00:00Z");
    db.exec("UPDATE subscribers SET status = 'paused'");
    db.exec("UPDATE subscribers SET status = 'active'");
    // Resumed on 3 Nov with digest.max_age_days = 3: the 28 Oct paper is too old.
    send_at(&app, "2024-11-03T09:00:00Z");
    let r = rows(&app);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["papers"], 0, "{r:?}");
    assert_eq!(r[1]["status"], "empty");
}
