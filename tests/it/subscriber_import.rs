//! `paperboy subscriber import` and `subscriber export` on the real binary with a real SQLite
//! database: bad rows reported with their line numbers and skipped, good rows imported with
//! their profiles, a second run adds nothing, and export → import into a fresh database gives
//! back the same CSV.

use crate::common::*;

const NOW: &str = "2024-10-25T09:00:00Z";

/// A file with good rows, bad rows of each kind, a quoted cell spanning two lines (its line
/// break is read as a space) and a repeated address.
const CSV: &str = "\
email,interests,status,frequency,send_time,timezone,max_papers,authors,categories,category_mode,examples
ada@example.org,\"\"\"contrastive loss\"\" memory\",active,daily,07:00,Europe/Paris,10,Yoshua Bengio; Zesen Cheng,cs.LG; stat.ML,filter,2410.17243
not-an-address,diffusion,active,daily,07:00,UTC,10,,,,
bob@example.org,\"diffusion (video\",active,daily,07:00,UTC,10,,,,
mallory@example.org,\"reinforcement
learning\",active,daily,07:00,UTC,10,,,,
dave@example.org,agents,active,daily,25:00,UTC,10,,,,
erin@example.org,agents,active,daily,07:00,Mars/Olympus,10,,,,
frank@example.org,agents,active,daily,07:00,UTC,1000,,,,
grace@example.org,agents,active,daily,07:00,UTC,10,,,sometimes,
heidi@example.org,agents,active,daily,07:00,UTC,10,,,,not-an-id
ADA@example.org,agents,active,daily,07:00,UTC,10,,,,
ivan@example.org,*,paused,weekly:monday,18:30,America/New_York,3,,cs,boost,
carol@example.org,reinforcement learning,,weekdays,,,5,,,,
";

#[track_caller]
fn write(app: &TestApp, name: &str, text: &str) -> String {
    let path = app.dir().join(name);
    std::fs::write(&path, text).expect("write csv");
    path.display().to_string()
}

#[test]
fn import_reports_bad_rows_by_line_imports_the_rest_and_is_safe_to_run_twice() {
    let app = TestApp::builder().build();
    let file = write(&app, "subscribers.csv", CSV);

    let out = app
        .paperboy(["subscriber", "import", &file, "--confirmed"])
        .at(NOW)
        .run();
    println!("{out}");
    assert_eq!(out.status.code(), Some(1), "bad rows make the exit code 1");
    for (line, needle) in [
        (3, "email `not-an-address`"),
        (4, "interests: cannot understand"),
        (7, "send_time `25:00`"),
        (8, "timezone `Mars/Olympus`"),
        (9, "max_papers `1000`"),
        (10, "category_mode `sometimes`"),
        (11, "examples: `not-an-id`"),
        (12, "email `ada@example.org` already appears on line 2"),
    ] {
        let expected = format!("subscribers.csv: line {line}: {needle}");
        assert!(
            out.stderr.lines().any(|l| l.contains(&expected)),
            "missing {expected:?} in:\n{out}"
        );
    }
    // Mallory's quoted interests span lines 5 and 6: one good row.
    assert!(!out.stderr.contains("line 5:"), "{out}");
    assert!(!out.stderr.contains("line 6:"), "{out}");
    assert!(
        out.stdout.contains(
            "imported 4 subscribers; 0 already subscribed (left unchanged); 8 bad rows skipped"
        ),
        "{out}"
    );
    // Each distinct clause once: "contrastive loss", "memory", and "reinforcement learning"
    // (written by two subscribers); `*` has none.
    assert!(
        out.stdout.contains("embedded 3 new interest clauses"),
        "{out}"
    );

    let list = app.subscribers_json(NOW);
    let by_email = |e: &str| {
        list.iter()
            .find(|s| s["email"] == e)
            .unwrap_or_else(|| panic!("{e} not imported: {list:?}"))
            .clone()
    };
    assert_eq!(list.len(), 4);
    assert_eq!(
        by_email("mallory@example.org")["interests"],
        "reinforcement learning"
    );
    let ada = by_email("ada@example.org");
    assert_eq!(ada["status"], "active");
    assert_eq!(ada["timezone"], "Europe/Paris");
    assert_eq!(ada["interests"], "\"contrastive loss\" memory");
    let carol = by_email("carol@example.org");
    // An empty status takes --confirmed; empty time and zone take the configured defaults.
    assert_eq!(carol["status"], "active");
    assert_eq!(carol["frequency"], "weekdays");
    assert_eq!(carol["max_papers"], 5);
    assert_eq!(carol["interests"], "reinforcement learning");
    let ivan = by_email("ivan@example.org");
    assert_eq!(ivan["status"], "paused");
    assert_eq!(ivan["frequency"], "weekly:mon");
    assert_eq!(ivan["send_time"], "18:30");

    // The same file again: nothing added, nothing changed, the same bad rows.
    let again = app
        .paperboy(["subscriber", "import", &file, "--confirmed"])
        .at(NOW)
        .run();
    assert!(
        again.stdout.contains(
            "imported 0 subscribers; 4 already subscribed (left unchanged); 8 bad rows skipped"
        ),
        "{again}"
    );
    assert!(
        again.stdout.contains("embedded 0 new interest clauses"),
        "{again}"
    );
    let after = app.subscribers_json(NOW);
    assert_eq!(after, list, "a second import changes nothing");

    // --check reads and reports but writes nothing.
    let fresh = TestApp::builder().build();
    let file = write(&fresh, "subscribers.csv", CSV);
    let checked = fresh
        .paperboy(["subscriber", "import", &file, "--check"])
        .at(NOW)
        .run();
    assert!(
        checked
            .stdout
            .contains("checked 12 rows: 4 good, 8 bad; nothing was written"),
        "{checked}"
    );
    assert!(fresh.subscribers_json(NOW).is_empty());
}

#[test]
fn import_reads_standard_input_with_the_same_checks() {
    let app = TestApp::builder().build();
    let file = write(&app, "subscribers.csv", CSV);
    let out = app
        .paperboy(["subscriber", "import", "-", "--confirmed"])
        .stdin_from(std::path::Path::new(&file))
        .at(NOW)
        .run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("-: line 12: email `ada@example.org` already appears on line 2"),
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "imported 4 subscribers; 0 already subscribed (left unchanged); 8 bad rows skipped"
        ),
        "{out}"
    );
    let emails: Vec<String> = app
        .subscribers_json(NOW)
        .iter()
        .map(|s| s["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails.len(), 4, "{emails:?}");
    assert!(
        emails.contains(&"ada@example.org".to_string()),
        "{emails:?}"
    );
}

#[test]
fn import_refuses_a_file_without_the_required_columns_or_with_unknown_ones() {
    let app = TestApp::builder().build();
    let missing = write(
        &app,
        "missing.csv",
        "email,status\nada@example.org,active\n",
    );
    let out = app
        .paperboy(["subscriber", "import", &missing])
        .at(NOW)
        .run();
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("line 1: the column `interests` is missing"),
        "{out}"
    );
    let unknown = write(
        &app,
        "unknown.csv",
        "email,interests,colour\na@example.org,x,red\n",
    );
    let out = app
        .paperboy(["subscriber", "import", &unknown])
        .at(NOW)
        .run();
    assert!(!out.status.success());
    assert!(out.stderr.contains("unknown column `colour`"), "{out}");
    assert!(app.subscribers_json(NOW).is_empty());
}

#[test]
fn export_then_import_into_a_fresh_database_round_trips_profiles() {
    let first = TestApp::builder().build();
    let file = write(&first, "subscribers.csv", CSV);
    first
        .paperboy(["subscriber", "import", &file])
        .at(NOW)
        .run();
    // A profile set through `subscriber add` too, not only through import.
    first
        .paperboy([
            "subscriber",
            "add",
            "judy@example.org",
            "--interests",
            "author:\"Yoshua Bengio\"",
            "--confirmed",
            "--authors",
            "Geoffrey Hinton",
            "--categories",
            "cs.CL",
            "--like",
            "2410.17244",
        ])
        .at(NOW)
        .run()
        .assert_success();
    let exported = first.paperboy(["subscriber", "export"]).at(NOW).run();
    exported.assert_success();
    let text = exported.stdout.clone();
    assert!(
        text.starts_with(
            "email,status,interests,frequency,send_time,timezone,max_papers,authors,categories,category_mode,examples\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ada@example.org,active,\"\"\"contrastive loss\"\" memory\",daily,07:00,Europe/Paris,10,Yoshua Bengio; Zesen Cheng,cs.LG; stat.ML,filter,2410.17243"
        ),
        "{text}"
    );
    assert!(
        text.contains("judy@example.org,active,\"author:\"\"Yoshua Bengio\"\"\",daily,"),
        "{text}"
    );
    // Carol had no status and no --confirmed: pending, and exported as such.
    assert!(
        text.contains("carol@example.org,pending,reinforcement learning,weekdays,"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1 + 5, "{text}");

    let second = TestApp::builder().build();
    let copy = write(&second, "export.csv", &text);
    let out = second
        .paperboy(["subscriber", "import", &copy])
        .at(NOW)
        .run();
    out.assert_success();
    assert!(out.stdout.contains("imported 5 subscribers"), "{out}");
    let again = second.paperboy(["subscriber", "export"]).at(NOW).run();
    again.assert_success();
    assert_eq!(
        again.stdout, text,
        "export → import → export gives the same file"
    );
}

/// Interests pasted from a list or from keyphrase data: a quoted cell with a tab and line breaks
/// is stored with spaces. Interests no person writes (parentheses 26 and 1,000 deep, invisible
/// direction overrides) are refused with what to write instead, before any query parser runs.
#[test]
fn import_reads_tabs_and_line_breaks_as_spaces_and_refuses_hostile_interests() {
    let app = TestApp::builder().build();
    let nested = |depth: usize| format!("{}memory{}", "(".repeat(depth), ")".repeat(depth));
    let csv = format!(
        "email,interests\n\
         kim@example.org,\"contrastive\tloss\r\nmemory\nbank\"\n\
         lee@example.org,{}\n\
         max@example.org,{}\n\
         ned@example.org,diffusion \u{202E}oediv\n\
         oli@example.org,\"a\u{7}b\"\n",
        nested(26),
        nested(1000),
    );
    let file = write(&app, "keyphrases.csv", &csv);
    let started = std::time::Instant::now();
    let out = app
        .paperboy(["subscriber", "import", &file, "--confirmed"])
        .at(NOW)
        .run();
    println!("{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the import took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{out}");
    for (line, needle) in [
        (
            5,
            "the interests nest parentheses 26 levels deep; at most 4 are allowed",
        ),
        (6, "the interests nest parentheses 1000 levels deep"),
        (7, "invisible formatting character (U+202E"),
        (8, "control character (U+0007) at character 2"),
    ] {
        let expected = format!("keyphrases.csv: line {line}: ");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&expected) && l.contains(needle)),
            "missing {expected:?} with {needle:?} in:\n{out}"
        );
    }
    assert!(out.stderr.contains("side by side"), "{out}");
    assert!(
        out.stdout.contains(
            "imported 1 subscribers; 0 already subscribed (left unchanged); 4 bad rows skipped"
        ),
        "{out}"
    );
    let list = app.subscribers_json(NOW);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["email"], "kim@example.org");
    assert_eq!(list[0]["interests"], "contrastive loss memory bank");
}

/// `subscriber add` reads a tab as a space and refuses nesting no person writes, at once.
#[test]
fn subscriber_add_reads_tabs_as_spaces_and_refuses_hostile_nesting() {
    let app = TestApp::builder().build();
    app.paperboy([
        "subscriber",
        "add",
        "kim@example.org",
        "--interests",
        "\"contrastive loss\"\tmemory",
        "--confirmed",
    ])
    .at(NOW)
    .run()
    .assert_success();
    let list = app.subscribers_json(NOW);
    assert_eq!(list[0]["interests"], "\"contrastive loss\" memory");

    for depth in [26usize, 1000] {
        let hostile = format!("{}memory{}", "(".repeat(depth), ")".repeat(depth));
        let started = std::time::Instant::now();
        let out = app
            .paperboy([
                "subscriber",
                "add",
                "lee@example.org",
                "--interests",
                &hostile,
                "--confirmed",
            ])
            .at(NOW)
            .run();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "depth {depth} took {:?}",
            started.elapsed()
        );
        assert!(!out.status.success(), "{out}");
        assert!(
            out.stderr.contains(&format!(
                "the interests nest parentheses {depth} levels deep; at most 4 are allowed"
            )),
            "{out}"
        );
        assert!(out.stderr.contains("side by side"), "{out}");
    }
    assert_eq!(app.subscribers_json(NOW).len(), 1);
}

/// Issue 17: a row's profile is checked by `model::Profile::parse`, the same as `subscriber add`
/// and the manage page: a category that is not arXiv's, an author that is not a name and more
/// entries than a profile may hold are bad rows, reported with the column and the same words
/// `subscriber add` uses. Lists split as the other paths split them (`model::split_list`).
#[test]
fn import_checks_profiles_as_subscriber_add_does() {
    let app = TestApp::builder().build();
    let many_authors: Vec<String> = (1..=51).map(|i| format!("Author {i}")).collect();
    let csv = format!(
        "email,interests,authors,categories,category_mode,examples\n\
         pat@example.org,agents,,Computer Science; cs.LG,,\n\
         quin@example.org,agents,{},,,\n\
         rae@example.org,agents,1234,cs.LG,filter,not-an-id\n\
         sam@example.org,agents,\"Fulu Li, fulu li; Yann LeCun\",\"cs.LG, stat.ML\",Filter,arXiv:2410.17243\n",
        many_authors.join("; ")
    );
    let file = write(&app, "profiles.csv", &csv);
    let out = app
        .paperboy(["subscriber", "import", &file, "--confirmed"])
        .at(NOW)
        .run();
    println!("{out}");
    assert_eq!(out.status.code(), Some(1), "{out}");
    let category = "categories: `Computer Science` is not an arXiv category";
    for (line, needles) in [
        (2, vec![category]),
        (3, vec!["authors: too many authors (51); keep at most 50"]),
        (
            4,
            vec![
                "authors: the author `1234` is not a name",
                "examples: `not-an-id` is not an arXiv paper",
            ],
        ),
    ] {
        let prefix = format!("profiles.csv: line {line}: ");
        let reported = out
            .stderr
            .lines()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("line {line} not reported:\n{out}"));
        for needle in needles {
            assert!(reported.contains(needle), "{needle:?} not in {reported:?}");
        }
    }
    assert!(
        out.stdout.contains(
            "imported 1 subscribers; 0 already subscribed (left unchanged); 3 bad rows skipped"
        ),
        "{out}"
    );
    let exported = app.paperboy(["subscriber", "export"]).at(NOW).run();
    exported.assert_success();
    assert_eq!(exported.stdout.lines().count(), 2, "{exported}");
    assert!(
        exported.stdout.contains(
            "sam@example.org,active,agents,daily,07:00,UTC,10,Fulu Li; Yann LeCun,cs.LG; stat.ML,filter,2410.17243"
        ),
        "{exported}"
    );

    // `subscriber add` refuses the same category with the same words.
    let added = app
        .paperboy([
            "subscriber",
            "add",
            "pat@example.org",
            "--interests",
            "agents",
            "--categories",
            "Computer Science,cs.LG",
        ])
        .at(NOW)
        .run();
    added.assert_failure();
    assert!(
        added
            .stderr
            .contains("--categories: `Computer Science` is not an arXiv category"),
        "{added}"
    );
}

/// An import whose embedding did not finish (stopped, or the model failed) loses nothing: its
/// subscribers are planned by words alone, `preview` says so, and `db embed` fills in the
/// vectors later.
#[test]
fn interests_left_without_vectors_are_matched_by_words_until_db_embed_fills_them_in() {
    let app = TestApp::builder().build();
    let file = write(&app, "subscribers.csv", CSV);
    app.paperboy(["subscriber", "import", &file, "--confirmed"])
        .at(NOW)
        .run();
    let db = crate::delivery_support::Db::open(&app);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM interest_vectors"), 3);
    db.exec("DELETE FROM interest_vectors");

    let words_alone = "have no vector yet, so this digest is matched by words alone";
    let preview = app.paperboy(["preview", "ada@example.org"]).at(NOW).run();
    preview.assert_success();
    assert!(
        preview
            .stderr
            .contains(&format!("2 of the interests' clauses {words_alone}")),
        "{preview}"
    );

    let filled = app.paperboy(["db", "embed"]).at(NOW).run();
    filled.assert_success();
    assert!(
        filled
            .stdout
            .contains("embedded 0 papers, 3 interest clauses"),
        "{filled}"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM interest_vectors"), 3);
    let preview = app.paperboy(["preview", "ada@example.org"]).at(NOW).run();
    preview.assert_success();
    assert!(!preview.stderr.contains(words_alone), "{preview}");

    // --again recomputes every vector, and nothing is left missing.
    let again = app.paperboy(["db", "embed", "--again"]).at(NOW).run();
    again.assert_success();
    assert!(again.stdout.contains("3 interest clauses"), "{again}");
}
