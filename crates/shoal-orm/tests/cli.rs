//! The `shoal-orm` binary end to end on a SQLite file: new, up, status,
//! down, and the messages a user sees when something is wrong.

use std::path::Path;
use std::process::Command;

use shoal_orm::Model;

fn run(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal-orm"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run shoal-orm");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn migrate_new_up_status_down() {
    let dir = tempfile::tempdir().unwrap();
    let url = "sqlite://app.db";

    eprintln!("new writes an empty pair to fill in");
    let (ok, text) = run(dir.path(), &["migrate", "new", "create notes"]);
    assert!(ok, "{text}");
    assert!(text.contains("0001_create_notes.up.sql"), "{text}");
    let up = dir.path().join("migrations/0001_create_notes.up.sql");
    let down = dir.path().join("migrations/0001_create_notes.down.sql");
    let header = std::fs::read_to_string(&up).unwrap();
    std::fs::write(&up, format!("{header}CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\nINSERT INTO notes (body) VALUES ('a;b');\n")).unwrap();
    std::fs::write(&down, "DROP TABLE notes;\n").unwrap();

    eprintln!("status, up, status, down");
    let (ok, text) = run(dir.path(), &["migrate", "status", "--url", url]);
    assert!(ok && text.contains("0001  pending"), "{text}");
    let (ok, text) = run(dir.path(), &["migrate", "up", "--url", url]);
    assert!(ok && text.contains("applied 0001"), "{text}");
    let (ok, text) = run(dir.path(), &["migrate", "up", "--url", url]);
    assert!(ok && text.contains("nothing to apply"), "{text}");
    let (ok, text) = run(dir.path(), &["migrate", "status", "--url", url]);
    assert!(ok && text.contains("0001  applied"), "{text}");
    let (ok, text) = run(dir.path(), &["migrate", "down", "--url", url]);
    assert!(ok && text.contains("reverted 0001"), "{text}");

    eprintln!("errors are one line with a SQLSTATE and a non-zero exit");
    std::fs::write(&up, "CREATE TABLE broken (;\n").unwrap();
    let (ok, text) = run(dir.path(), &["migrate", "up", "--url", url]);
    assert!(!ok && text.contains("error (SO002)") && text.contains("0001_create_notes"), "{text}");
    let (ok, text) = run(dir.path(), &["migrate", "generate", "x", "--url", url]);
    assert!(!ok && text.contains("cli::main"), "generate explains where it runs: {text}");
    let (ok, text) = run(dir.path(), &["migrate", "up", "--url", "nosuch://x"]);
    assert!(!ok && text.contains("unknown database URL scheme"), "{text}");
    let (ok, text) = run(dir.path(), &["migrate", "up"]);
    assert!(!ok && text.contains("--url"), "{text}");
    let (ok, text) = run(dir.path(), &["--help"]);
    assert!(ok && text.contains("migrate"), "{text}");
}

mod app {
    use shoal_orm::prelude::*;

    #[derive(Model, Clone, Debug)]
    #[model(table = "notes")]
    pub struct Note {
        #[model(primary_key, auto_increment)]
        pub id: i64,
        pub text: String,
    }
}

#[tokio::test]
async fn an_application_binary_generates_from_its_models() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("app.db");
    let mig = dir.path().join("migrations");
    let url = format!("sqlite://{}", db_path.display());
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["my-app".to_string(), "migrate".to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--url".to_string(), url.clone(), "--dir".to_string(), mig.display().to_string()]);
        v
    };
    let models = [&app::Note::TABLE];
    let text = shoal_orm::migrate::cli::run(&models, args(&["generate", "notes"])).await.unwrap();
    assert!(text.contains("0001_notes.up.sql"), "{text}");
    let text = shoal_orm::migrate::cli::run(&models, args(&["up"])).await.unwrap();
    assert_eq!(text, "applied 0001");
    let text = shoal_orm::migrate::cli::run(&models, args(&["generate", "again"])).await.unwrap();
    assert_eq!(text, "the database already matches the models");
    let e =
        shoal_orm::migrate::cli::run(&models, args(&["generate", "x", "--rename-column", "bad"])).await.unwrap_err();
    assert!(e.to_string().contains("TABLE.OLD=NEW"), "{e}");
}
