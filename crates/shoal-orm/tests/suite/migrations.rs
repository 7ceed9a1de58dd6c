//! Migrations: generate from models, apply, revert, rename by hint only.

use shoal_orm::migrate::{live_schema, Migrator, Rename};
use shoal_orm::prelude::*;
use shoal_orm::{Dialect, Distribution};

use crate::harness::{Kind, TestDb};

mod v1 {
    use shoal_orm::prelude::*;

    #[derive(Model, Clone, Debug, PartialEq)]
    #[model(table = "people", shard_key = "id")]
    pub struct Person {
        #[model(primary_key)]
        pub id: i64,
        #[model(max_length = 80)]
        pub name: String,
    }
}

mod v1_reference {
    use shoal_orm::prelude::*;

    #[derive(Model, Clone, Debug, PartialEq)]
    #[model(table = "people", reference)]
    pub struct Person {
        #[model(primary_key)]
        pub id: i64,
        #[model(max_length = 80)]
        pub name: String,
    }
}

mod v2 {
    use shoal_orm::prelude::*;

    #[derive(Model, Clone, Debug, PartialEq)]
    #[model(table = "people", shard_key = "id")]
    pub struct Person {
        #[model(primary_key)]
        pub id: i64,
        #[model(max_length = 80)]
        pub name: String,
        #[model(index, max_length = 80)]
        pub nickname: Option<String>,
    }

    #[derive(Model, Clone, Debug, PartialEq)]
    #[model(table = "pets", reference)]
    pub struct Pet {
        #[model(primary_key)]
        pub id: i64,
        pub owner_id: i64,
        #[model(belongs_to(foreign_key = owner_id))]
        pub owner: BelongsTo<Person>,
    }
}

mod v3 {
    use shoal_orm::prelude::*;

    #[derive(Model, Clone, Debug, PartialEq)]
    #[model(table = "people", shard_key = "id")]
    pub struct Person {
        #[model(primary_key)]
        pub id: i64,
        #[model(max_length = 80)]
        pub full_name: String,
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

pub async fn generate_apply_revert(t: TestDb) {
    let db = &t.db;
    let dir = tempfile::tempdir().unwrap();

    eprintln!("the first migration creates the table, with Shoal's distribution only on Shoal");
    let m1 = Migrator::new(db, dir.path()).models(&[&v1::Person::TABLE]);
    let f1 = m1.generate("create people").await.unwrap().expect("a first migration");
    assert_eq!(f1.version, 1);
    let up = read(&f1.up_path);
    assert!(up.contains("CREATE TABLE"), "{up}");
    assert_eq!(up.contains("WITH (shard_key = 'id')"), t.kind == Kind::Shoal, "{up}");
    assert!(read(&f1.up_path.with_file_name("0001_create_people.down.sql")).contains("DROP TABLE"));
    assert_eq!(m1.status().await.unwrap().iter().map(|s| s.applied).collect::<Vec<_>>(), vec![false]);
    assert!(m1.generate("again").await.is_err(), "a pending migration blocks generating another");
    assert_eq!(m1.up().await.unwrap(), vec![1]);
    assert!(m1.generate("nothing").await.unwrap().is_none(), "the schema matches the models");
    let placed = live_schema(db).await.unwrap()["people"].distribution.clone();
    if t.kind == Kind::Shoal {
        assert_eq!(placed, Distribution::Sharded { column: "id".into(), shards: Some(1) }, "read from shoal.tables");
        eprintln!("a model that places the table otherwise gets a note, not DDL");
        let moved = Migrator::new(db, dir.path()).models(&[&v1_reference::Person::TABLE]).plan().await.unwrap();
        assert!(moved.up.is_empty(), "{:?}", moved.up);
        assert!(moved.notes.iter().any(|n| n.contains("people: distribution differs")), "{:?}", moved.notes);
    } else {
        assert_eq!(placed, Distribution::Default);
    }
    v1::Person { id: 1, name: "Ann".into() }.insert(db).await.unwrap();

    eprintln!("adding a column, an index and a table with a foreign key");
    let m2 = Migrator::new(db, dir.path()).models(&[&v2::Person::TABLE, &v2::Pet::TABLE]);
    let f2 = m2.generate("nicknames and pets").await.unwrap().expect("a second migration");
    let up = read(&f2.up_path);
    for needle in ["ADD COLUMN", "CREATE INDEX", "CREATE TABLE", "FOREIGN KEY"] {
        assert!(up.contains(needle), "{needle} in {up}");
    }
    assert_eq!(up.contains("WITH (reference = true)"), t.kind == Kind::Shoal, "{up}");
    assert_eq!(m2.up().await.unwrap(), vec![2]);
    let mut ann = v2::Person::get(db, 1).await.unwrap();
    assert_eq!(ann.nickname, None);
    ann.nickname = Some("annie".into());
    ann.update(db).await.unwrap();
    v2::Pet { id: 1, owner_id: 1, owner: Default::default() }.insert(db).await.unwrap();
    assert!(m2.generate("nothing").await.unwrap().is_none());

    eprintln!("down reverts the newest migration; up applies it again");
    assert_eq!(m2.down(1).await.unwrap(), vec![2]);
    let live = live_schema(db).await.unwrap();
    assert!(!live.contains_key("pets"));
    assert!(live["people"].column("nickname").is_none());
    assert_eq!(v1::Person::get(db, 1).await.unwrap().name, "Ann", "data in untouched columns survives");
    assert_eq!(m2.up().await.unwrap(), vec![2]);
    let status = m2.status().await.unwrap();
    assert!(status.iter().all(|s| s.applied && s.problem.is_none()), "{status:?}");
    assert_eq!(m2.down(2).await.unwrap(), vec![2, 1]);
    assert!(!live_schema(db).await.unwrap().contains_key("people"));
}

pub async fn renames_drops_and_safety_checks(t: TestDb) {
    let db = &t.db;
    let dir = tempfile::tempdir().unwrap();
    let m1 = Migrator::new(db, dir.path()).models(&[&v1::Person::TABLE]);
    m1.generate("create").await.unwrap();
    m1.up().await.unwrap();
    v1::Person { id: 1, name: "Ann".into() }.insert(db).await.unwrap();

    eprintln!("a rename happens only with a hint, and keeps the data");
    let guessed = Migrator::new(db, dir.path()).models(&[&v3::Person::TABLE]).plan().await.unwrap();
    assert!(guessed.up.iter().any(|s| s.contains("DROP COLUMN")) || guessed.rebuilds, "{guessed:?}");
    let m3 = Migrator::new(db, dir.path()).models(&[&v3::Person::TABLE]).rename(Rename::column(
        "people",
        "name",
        "full_name",
    ));
    let f = m3.generate("rename name").await.unwrap().unwrap();
    let up = read(&f.up_path);
    assert!(up.contains("RENAME COLUMN") && !up.contains("DROP COLUMN"), "{up}");
    m3.up().await.unwrap();
    assert_eq!(v3::Person::get(db, 1).await.unwrap().full_name, "Ann");
    m3.down(1).await.unwrap();
    assert_eq!(v1::Person::get(db, 1).await.unwrap().name, "Ann");
    m3.up().await.unwrap();

    eprintln!("tables missing from the models are dropped (and re-created by down)");
    let drop_plan = Migrator::new(db, dir.path()).models(&[&crate::models::Tag::TABLE]).plan().await.unwrap();
    assert!(drop_plan.up.iter().any(|s| s.starts_with("DROP TABLE") && s.contains("people")), "{drop_plan:?}");
    assert!(drop_plan.down.iter().any(|s| s.starts_with("CREATE TABLE") && s.contains("people")));
    assert!(Migrator::new(db, dir.path()).plan().await.is_err(), "no models, no plan");

    eprintln!("concurrent runners apply each migration once");
    let extra = Migrator::new(db, dir.path()).models(&[&v3::Person::TABLE, &crate::models::Tag::TABLE]);
    extra.generate("tags").await.unwrap().unwrap();
    let (r1, r2) = (Migrator::new(db, dir.path()), Migrator::new(db, dir.path()));
    let (a, b) = tokio::join!(r1.up(), r2.up());
    let mut applied = a.unwrap();
    applied.extend(b.unwrap());
    assert_eq!(applied, vec![3], "exactly one runner applied 0003");

    eprintln!("an edited applied file and a file for another dialect are refused");
    let first = dir.path().join("0001_create.up.sql");
    let original = read(&first);
    std::fs::write(&first, format!("{original}\n-- edited\n")).unwrap();
    let e = m3.up().await.unwrap_err();
    assert!(e.to_string().contains("edited"), "{e}");
    assert!(m3.status().await.unwrap()[0].problem.is_some());
    std::fs::write(&first, original).unwrap();
    let other = if db.dialect() == Dialect::Mysql { "sqlite" } else { "mysql" };
    std::fs::write(dir.path().join("0009_foreign.up.sql"), format!("-- dialect: {other}\nSELECT 1;\n")).unwrap();
    let e = m3.up().await.unwrap_err();
    assert!(e.to_string().contains("generated for"), "{e}");
}
