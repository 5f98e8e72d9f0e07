//! `exspin::fsutil`: atomic writes of files and folders.

use exspin::fsutil::{Staged, write_atomically};

/// Names in `dir`, sorted: what a reader listing the folder sees.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn a_file_is_written_and_replaced_without_leaving_a_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub/summary.json");
    write_atomically(&path, b"first").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    write_atomically(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    assert_eq!(names(&tmp.path().join("sub")), ["summary.json"]);
}

#[test]
fn a_folder_replaces_the_old_one_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("v1");
    for (file, text) in [("a.txt", "old"), ("b.txt", "new")] {
        let staged = Staged::dir(&dest).unwrap();
        // Nothing is visible under the destination name while it is being filled.
        assert!(!dest.join(file).exists());
        std::fs::create_dir(staged.path().join("inner")).unwrap();
        std::fs::write(staged.path().join("inner").join(file), text).unwrap();
        staged.commit().unwrap();
    }
    // The second folder replaced the first: no file of the old one is left in it.
    assert_eq!(names(&dest.join("inner")), ["b.txt"]);
    assert_eq!(names(tmp.path()), ["v1"]);
}

#[test]
fn an_uncommitted_write_leaves_the_destination_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    write_atomically(&path, b"good").unwrap();
    {
        let staged = Staged::file(&path).unwrap();
        std::fs::write(staged.path(), b"half").unwrap();
        // Dropped without `commit`, as when the writer fails half-way.
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"good");
    assert_eq!(names(tmp.path()), ["db.sqlite"]);
}
