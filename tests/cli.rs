//! The `pdvault` binary, run for real: every command of the README's CLI quickstart.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::binary::{ok, pdvault};

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = pdvault(dir, args, None);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(err.starts_with("pdvault: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("valid JSON")
}

#[test]
fn records_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    ok(&dir, &["init"], None);
    assert!(fails(&dir, &["init"]).contains("already exists"));
    let id = ok(
        &dir,
        &[
            "put",
            "--subject",
            "alice@example.com",
            "--category",
            "contact",
            "--purpose",
            "billing",
        ],
        Some(b"+44 20 7946 0000"),
    )
    .trim()
    .to_owned();
    assert_eq!(id.len(), 32);
    let bytes: Vec<u8> = (0..=255u8).collect();
    let file = tmp.path().join("bin");
    std::fs::write(&file, &bytes).unwrap();
    let out = json(&ok(
        &dir,
        &[
            "--json",
            "put",
            "--subject",
            "alice@example.com",
            "--category",
            "usage",
            "--basis",
            "consent",
            "--source",
            "app",
            "--file",
            file.to_str().unwrap(),
        ],
        None,
    ));
    let bin_id = out["record"].as_str().unwrap().to_owned();
    let got = pdvault(
        &dir,
        &["get", "--subject", "alice@example.com", "--record", &bin_id],
        None,
    );
    assert_eq!(got.stdout, bytes, "get is byte for byte");
    assert_eq!(
        ok(
            &dir,
            &[
                "get",
                "--subject",
                "alice@example.com",
                "--record",
                &id,
                "--purpose",
                "billing"
            ],
            None
        ),
        "+44 20 7946 0000"
    );
    // `read`: one JSON line per record the purpose may read; text as text, bytes as base64.
    let lines = |purpose: &str| -> Vec<serde_json::Value> {
        let args = [
            "read",
            "--subject",
            "alice@example.com",
            "--purpose",
            purpose,
        ];
        ok(&dir, &args, None).lines().map(json).collect()
    };
    let all = lines("subject-access");
    assert_eq!(all.len(), 2);
    let text = all
        .iter()
        .find(|l| l["record"]["record"] == id.as_str())
        .unwrap();
    assert_eq!(text["payload"]["text"], "+44 20 7946 0000");
    assert_eq!(text["record"]["category"], "contact");
    let bin = all
        .iter()
        .find(|l| l["record"]["record"] == bin_id.as_str())
        .unwrap();
    assert_eq!(bin["payload"]["base64"].as_str().unwrap().len(), 344);
    let billing = lines("billing");
    assert_eq!(billing.len(), 1);
    assert_eq!(billing[0]["record"]["record"], id.as_str());
    let list = json(&ok(
        &dir,
        &["--json", "list", "--subject", "alice@example.com"],
        None,
    ));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for r in list {
        for field in ["record", "category", "purposes", "basis", "collected_at"] {
            assert!(r.get(field).is_some(), "list entry lacks {field}");
        }
    }
    ok(
        &dir,
        &["update", "--subject", "alice@example.com", "--record", &id],
        Some(b"new"),
    );
    assert_eq!(
        ok(
            &dir,
            &["get", "--subject", "alice@example.com", "--record", &id],
            None
        ),
        "new"
    );
    ok(
        &dir,
        &[
            "rectify",
            "--subject",
            "alice@example.com",
            "--record",
            &id,
            "--reason",
            "typo",
        ],
        Some(b"newer"),
    );
    assert!(ok(&dir, &["stats"], None).contains("records: 2"));
    assert_eq!(json(&ok(&dir, &["--json", "stats"], None))["records"], 2);
    ok(
        &dir,
        &[
            "delete",
            "--subject",
            "alice@example.com",
            "--record",
            &bin_id,
        ],
        None,
    );
    assert!(
        fails(
            &dir,
            &["get", "--subject", "alice@example.com", "--record", &bin_id]
        )
        .contains("no such record")
    );
    assert!(ok(&dir, &["verify"], None).contains("whole"));
    // errors: one line, no secret
    let e = fails(
        &dir,
        &["get", "--subject", "alice@example.com", "--record", "zz"],
    );
    assert!(!e.contains("alice"), "{e}");
    let wrong = Command::new(env!("CARGO_BIN_EXE_pdvault"))
        .args(["stats"])
        .env("PDVAULT_DIR", &dir)
        .env("PDVAULT_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    let none = Command::new(env!("CARGO_BIN_EXE_pdvault"))
        .args(["stats"])
        .env("PDVAULT_DIR", &dir)
        .env_remove("PDVAULT_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no passphrase"));
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, "correct horse\n").unwrap();
    let viafile = Command::new(env!("CARGO_BIN_EXE_pdvault"))
        .args(["--passphrase-file", pwfile.to_str().unwrap(), "verify"])
        .env("PDVAULT_DIR", &dir)
        .env_remove("PDVAULT_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        viafile.status.success(),
        "{}",
        String::from_utf8_lossy(&viafile.stderr)
    );
}

#[test]
fn erasure_holds_policy_and_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let policy = format!(
        "{}/policies/seed-001-m-exe.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(ok(&dir, &["policy", "check", &policy], None).contains("valid"));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[retention.acces-log]\nmax = \"3 months\"\n").unwrap();
    assert!(fails(&dir, &["policy", "check", bad.to_str().unwrap()]).contains("acces-log"));
    ok(&dir, &["init", "--policy", &policy], None);
    assert!(ok(&dir, &["policy", "show"], None).contains("7 years"));
    let s = ["--subject", "bob@example.com"];
    let tx = ok(
        &dir,
        &[&["put"][..], &s, &["--category", "transaction"]].concat(),
        Some(b"order 1"),
    )
    .trim()
    .to_owned();
    let ticket = ok(
        &dir,
        &[&["put"][..], &s, &["--category", "communication"]].concat(),
        Some(b"ticket"),
    )
    .trim()
    .to_owned();
    ok(
        &dir,
        &[
            &["put"][..],
            &s,
            &["--category", "usage", "--basis", "legitimate-interests"],
        ]
        .concat(),
        Some(b"clicks"),
    );
    let hold = json(&ok(
        &dir,
        &[
            &["--json", "hold", "place"][..],
            &s,
            &[
                "--category",
                "communication",
                "--reason",
                "dispute",
                "--reference",
                "CASE-1",
            ],
        ]
        .concat(),
        None,
    ));
    let hold = hold["hold"].as_str().unwrap().to_owned();
    assert!(ok(&dir, &["hold", "list"], None).contains(&hold));
    assert!(
        fails(
            &dir,
            &[&["delete"][..], &s, &["--record", &ticket]].concat()
        )
        .contains(&hold)
    );
    let report = json(&ok(&dir, &[&["--json", "erase"][..], &s].concat(), None));
    assert_eq!(report["erased"].as_array().unwrap().len(), 1);
    let retained = report["retained"].as_array().unwrap();
    assert_eq!(retained.len(), 2);
    for r in retained {
        assert!(r.get("record").is_some() && r.get("reason").is_some());
    }
    assert!(
        retained
            .iter()
            .any(|r| r["record"] == tx.as_str() && r["reason"]["kind"] == "minimum-retention")
    );
    ok(&dir, &["hold", "release", &hold], None);
    let sweep = json(&ok(&dir, &["--json", "sweep", "--dry-run"], None));
    assert_eq!(sweep["dry_run"], true);
    let sweep = json(&ok(&dir, &["--json", "sweep"], None));
    assert!(
        sweep["categories_erased"].as_u64().unwrap() + sweep["erased"].as_u64().unwrap() >= 1,
        "{sweep}"
    );
    assert!(
        fails(&dir, &[&["get"][..], &s, &["--record", &ticket]].concat())
            .contains("no such record")
    );
    assert_eq!(
        ok(&dir, &[&["get"][..], &s, &["--record", &tx]].concat(), None),
        "order 1"
    );
    ok(
        &dir,
        &[
            &["event"][..],
            &s,
            &["--kind", "account-closed", "--at", "2025-01-01"],
        ]
        .concat(),
        None,
    );
    // backup, ledger, restore
    let backup = tmp.path().join("backup");
    ok(&dir, &["backup", "--out", backup.to_str().unwrap()], None);
    let carol = ok(
        &dir,
        &["put", "--subject", "carol", "--category", "contact"],
        Some(b"c"),
    )
    .trim()
    .to_owned();
    let _ = carol;
    ok(
        &dir,
        &[
            "erase",
            "--subject",
            "bob@example.com",
            "--category",
            "transaction",
        ],
        None,
    );
    let ledger = tmp.path().join("ledger.json");
    ok(
        &dir,
        &["ledger", "export", "--out", ledger.to_str().unwrap()],
        None,
    );
    let restored = tmp.path().join("restored");
    ok(
        &dir,
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--to",
            restored.to_str().unwrap(),
            "--ledger",
            ledger.to_str().unwrap(),
        ],
        None,
    );
    // the transaction was retained at backup time but erase --category ... is refused by minimum retention
    assert!(ok(&restored, &["verify"], None).contains("whole"));
    // rotation
    let out = Command::new(env!("CARGO_BIN_EXE_pdvault"))
        .args(["rotate-key"])
        .env("PDVAULT_DIR", &dir)
        .env("PDVAULT_PASSPHRASE", "correct horse")
        .env("PDVAULT_NEW_PASSPHRASE", "battery staple")
        .env("PDVAULT_TEST_FAST_KDF", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fails(&dir, &["stats"]).contains("wrong passphrase"));
}

#[test]
fn rights_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    ok(
        &dir,
        &[
            "init",
            "--policy",
            &format!(
                "{}/policies/seed-001-m-exe.toml",
                env!("CARGO_MANIFEST_DIR")
            ),
        ],
        None,
    );
    let s = ["--subject", "dana@example.com"];
    let ads = ok(
        &dir,
        &[
            &["put"][..],
            &s,
            &[
                "--category",
                "usage",
                "--purpose",
                "ads",
                "--basis",
                "consent",
            ],
        ]
        .concat(),
        Some(b"likes shoes"),
    )
    .trim()
    .to_owned();
    assert!(
        fails(
            &dir,
            &[&["get"][..], &s, &["--record", &ads, "--purpose", "ads"]].concat()
        )
        .contains("consent")
    );
    ok(
        &dir,
        &[&["consent", "grant"][..], &s, &["--purpose", "ads"]].concat(),
        None,
    );
    assert_eq!(
        ok(
            &dir,
            &[&["get"][..], &s, &["--record", &ads, "--purpose", "ads"]].concat(),
            None
        ),
        "likes shoes"
    );
    ok(&dir, &[&["restrict"][..], &s].concat(), None);
    assert!(
        fails(
            &dir,
            &[&["get"][..], &s, &["--record", &ads, "--purpose", "ads"]].concat()
        )
        .contains("restricted")
    );
    ok(&dir, &[&["unrestrict"][..], &s].concat(), None);
    ok(
        &dir,
        &[
            &["disclose"][..],
            &s,
            &[
                "--recipient",
                "tax-authority",
                "--purpose",
                "tax",
                "--category",
                "transaction",
                "--ground",
                "subpoena: 9",
            ],
        ]
        .concat(),
        None,
    );
    let req = json(&ok(
        &dir,
        &[
            &["--json", "request", "open"][..],
            &s,
            &["--kind", "access"],
        ]
        .concat(),
        None,
    ));
    assert!(req["due_at"].is_string());
    assert!(ok(&dir, &["request", "list"], None).contains("access"));
    ok(&dir, &["request", "list", "--overdue"], None);
    let export = tmp.path().join("export.json");
    let answer = [&["export"][..], &s, &["--out", export.to_str().unwrap()]].concat();
    // Seed 001 has the requester's identity verified before an access request is answered.
    assert!(fails(&dir, &answer).contains("identity"));
    ok(
        &dir,
        &[
            "request",
            "verify",
            "--id",
            req["id"].as_str().unwrap(),
            "--by",
            "dpo",
            "--method",
            "account verification",
        ],
        None,
    );
    ok(
        &dir,
        &[&["export"][..], &s, &["--out", export.to_str().unwrap()]].concat(),
        None,
    );
    let doc = json(&std::fs::read_to_string(&export).unwrap());
    assert_eq!(doc["records"][0]["payload"]["text"], "likes shoes");
    assert_eq!(doc["disclosures"][0]["recipient"], "tax-authority");
    assert_eq!(
        doc["disclosures"][0]["retention"],
        "as the tax law requires"
    );
    let other = tmp.path().join("other");
    ok(&other, &["init"], None);
    assert!(
        ok(
            &other,
            &["import", "--file", export.to_str().unwrap()],
            None
        )
        .contains("1 records")
    );
    assert_eq!(
        ok(
            &other,
            &[&["get"][..], &s, &["--record", &ads]].concat(),
            None
        ),
        "likes shoes"
    );
    ok(
        &dir,
        &[
            &["consent", "withdraw"][..],
            &s,
            &["--purpose", "ads", "--erase"],
        ]
        .concat(),
        None,
    );
    assert!(fails(&dir, &[&["get"][..], &s, &["--record", &ads]].concat()).contains("no such"));
    assert!(ok(&dir, &["audit", "verify"], None).contains("intact"));
    let shown = ok(&dir, &["audit", "show", "--since", "2020-01-01"], None);
    assert!(
        shown.contains("export") && !shown.contains("dana"),
        "{shown}"
    );
    let req_id = req["id"].as_str().unwrap();
    ok(&dir, &["request", "close", req_id], None);
}

#[test]
fn an_invalid_utf8_subject_is_a_clear_error() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    ok(&dir, &["init"], None);
    let bad = std::ffi::OsStr::from_bytes(b"alice\xff@example.com");
    let out = Command::new(env!("CARGO_BIN_EXE_pdvault"))
        .args(["put", "--subject"])
        .arg(bad)
        .args(["--category", "contact"])
        .env("PDVAULT_DIR", &dir)
        .env("PDVAULT_PASSPHRASE", "correct horse")
        .env("PDVAULT_TEST_FAST_KDF", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.to_lowercase().contains("utf-8"), "{err}");
    // Nothing was stored; the vault still opens and verifies.
    ok(&dir, &["verify"], None);
}

/// `pdvault restore` and the erasure ledger. Guards the defect that `restore` without
/// `--ledger`, or with an empty, cut or edited ledger, exited 0 with erased data readable.
mod restore_ledger {
    use std::path::PathBuf;

    use super::*;

    /// A vault with alice's record, a backup of it, then alice erased and the ledger exported.
    struct Setup {
        tmp: tempfile::TempDir,
        dir: PathBuf,
        backup: PathBuf,
        ledger: PathBuf,
        alice: String,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        ok(&dir, &["init"], None);
        let subject = &["--subject", "alice@example.com"];
        let alice = ok(
            &dir,
            &[&["put"][..], subject, &["--category", "contact"]].concat(),
            Some(b"IBAN DE89 3704"),
        )
        .trim()
        .to_owned();
        let backup = tmp.path().join("backup");
        ok(&dir, &["backup", "--out", backup.to_str().unwrap()], None);
        ok(&dir, &[&["erase"][..], subject].concat(), None);
        let ledger = tmp.path().join("ledger.json");
        ok(
            &dir,
            &["ledger", "export", "--out", ledger.to_str().unwrap()],
            None,
        );
        Setup {
            tmp,
            dir,
            backup,
            ledger,
            alice,
        }
    }

    impl Setup {
        /// The arguments `restore --from BACKUP --to TO`, then `rest`.
        fn args<'a>(&'a self, to: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
            let mut args = vec![
                "restore",
                "--from",
                self.backup.to_str().unwrap(),
                "--to",
                to.to_str().unwrap(),
            ];
            args.extend_from_slice(rest);
            args
        }

        fn restore(&self, name: &str, rest: &[&str]) -> (PathBuf, Output) {
            let to = self.tmp.path().join(name);
            let out = pdvault(&self.dir, &self.args(&to, rest), None);
            (to, out)
        }

        fn get_alice(&self, vault: &Path) -> Output {
            pdvault(
                vault,
                &[
                    "get",
                    "--subject",
                    "alice@example.com",
                    "--record",
                    &self.alice,
                ],
                None,
            )
        }
    }

    #[test]
    fn restore_without_a_ledger_is_refused() {
        let s = setup();
        let to = s.tmp.path().join("r");
        let err = fails(&s.dir, &s.args(&to, &[]));
        assert!(err.contains("no erasure ledger"), "{err}");
        assert!(
            err.contains("--without-ledger-bring-erased-data-back"),
            "{err}"
        );
        assert!(!to.exists());
    }

    #[test]
    fn restore_with_a_cut_edited_or_old_format_ledger_is_refused() {
        let s = setup();
        let text = std::fs::read(&s.ledger).unwrap();
        let mut edited: serde_json::Value = serde_json::from_slice(&text).unwrap();
        edited["entries"].as_array_mut().unwrap().clear();
        edited["count"] = 0.into();
        let old = serde_json::to_vec(&edited["entries"]).unwrap();
        let cases: [(&str, Vec<u8>, &str); 3] = [
            ("cut.json", text[..text.len() / 2].to_vec(), "truncated"),
            (
                "edited.json",
                serde_json::to_vec(&edited).unwrap(),
                "authentication",
            ),
            ("old.json", old, "old, unauthenticated format"),
        ];
        for (name, bytes, why) in cases {
            let file = s.tmp.path().join(name);
            std::fs::write(&file, bytes).unwrap();
            let to = s.tmp.path().join(format!("r-{name}"));
            let err = fails(&s.dir, &s.args(&to, &["--ledger", file.to_str().unwrap()]));
            assert!(err.contains(why), "{name}: {err}");
            assert!(!to.exists(), "{name}");
        }
    }

    #[test]
    fn restore_with_the_ledger_keeps_erased_data_erased() {
        let s = setup();
        let (to, out) = s.restore("r", &["--ledger", s.ledger.to_str().unwrap()]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).is_empty());
        assert!(!s.get_alice(&to).status.success());
    }

    /// The opt-out does what its name says: the erased record is readable again, and stderr
    /// says so.
    #[test]
    fn restore_without_the_ledger_by_name_warns_and_brings_erased_data_back() {
        let s = setup();
        let opt_out = "--without-ledger-bring-erased-data-back";
        let (to, both) = s.restore("r", &["--ledger", s.ledger.to_str().unwrap(), opt_out]);
        assert!(!both.status.success());
        assert!(!to.exists());
        let (to, out) = s.restore("r", &[opt_out]);
        assert!(out.status.success());
        let warning = String::from_utf8_lossy(&out.stderr);
        assert!(warning.starts_with("pdvault: warning:"), "{warning}");
        assert!(warning.contains("readable again"), "{warning}");
        let got = s.get_alice(&to);
        assert!(got.status.success());
        assert_eq!(got.stdout, b"IBAN DE89 3704");
    }
}

// Guards misspelt categories being accepted: `put --category acount` stored a category no rule
// names, `hold place --category comunication` protected nothing and `erase --category paymnet`
// erased nothing, each exiting 0. Every command that names a category now refuses an unknown
// one with the nearest known name and a non-zero exit, storing nothing, and accepts a built-in
// and a custom category the policy declares.
#[test]
fn commands_refuse_unknown_categories_and_accept_declared_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = \"1\"\ncustom_categories = [\"loyalty-points\"]\n\
         [recipients.tax-office]\nkind = \"authority\"\n\
         categories = [\"account\", \"contact\", \"loyalty-points\"]\n\
         retention = \"10 years\"\ngrounds = [\"legal-obligation\"]\n",
    )
    .unwrap();
    ok(&dir, &["init", "--policy", policy.to_str().unwrap()], None);
    ok(&dir, &["policy", "check", policy.to_str().unwrap()], None);
    let s = ["--subject", "erin@example.com"];
    ok(
        &dir,
        &[&["put"][..], &s, &["--category", "contact"]].concat(),
        Some(b"phone"),
    );
    let doc = |category: &str, n: u32| {
        let file = tmp.path().join(format!("import-{category}-{n}.json"));
        let doc = serde_json::json!({
            "format": "pdvault-export", "version": 1, "exported_at": "2025-01-01T00:00:00Z",
            "subject_id": "erin@example.com",
            "subject": {"created_at": null, "pending_erasure": null, "events": {},
                        "restricted": false, "restricted_categories": [], "consents": {}},
            "holds": [], "disclosures": [],
            "records": [{"record": format!("{n:032x}"), "category": category,
                         "fideslang": null, "purposes": [], "basis": "contract", "source": null,
                         "collected_at": "2025-01-01T00:00:00Z", "version": 1,
                         "updated_at": "2025-01-01T00:00:00Z", "expires_at": null,
                         "retained_until": null, "payload": {"text": "x"}}]
        });
        std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let commands = |category: &str, n: u32| -> Vec<(&'static str, Vec<String>)> {
        let own = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c = category;
        vec![
            ("put", own(&[&["put"][..], &s, &["--category", c]].concat())),
            (
                "hold place",
                own(&[
                    &["hold", "place"][..],
                    &s,
                    &["--category", c, "--reason", "dispute"],
                ]
                .concat()),
            ),
            (
                "erase --category",
                own(&[&["erase"][..], &s, &["--category", c]].concat()),
            ),
            (
                "restrict",
                own(&[&["restrict"][..], &s, &["--category", c]].concat()),
            ),
            (
                "disclose",
                own(&[
                    &["disclose"][..],
                    &s,
                    &[
                        "--recipient",
                        "tax-office",
                        "--purpose",
                        "tax",
                        "--category",
                        c,
                        "--ground",
                        "legal-obligation",
                    ],
                ]
                .concat()),
            ),
            ("import", own(&["import", "--file", &doc(c, n)])),
        ]
    };
    let listed = || ok(&dir, &[&["--json", "list"][..], &s].concat(), None);
    let before = listed();
    for (name, args) in commands("acount", 1) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pdvault(&dir, &args, Some(b"data"));
        assert!(!out.status.success(), "{name} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unknown category `acount` — did you mean `account`?"),
            "{name}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert_eq!(listed(), before, "{name} changed the records");
    }
    for (i, good) in ["account", "loyalty-points"].into_iter().enumerate() {
        for (name, args) in commands(good, 10 + i as u32) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = pdvault(&dir, &args, Some(b"data"));
            assert!(
                out.status.success(),
                "{name} {good}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    ok(&dir, &["verify"], None);
}

/// `migrate` copies a directory vault into PostgreSQL (retiring the source), and `--store` runs
/// every command against it (on the server `PDVAULT_TEST_POSTGRES` names; required under CI).
#[test]
fn migrate_into_postgres_then_use_it_with_store() {
    let url = match std::env::var("PDVAULT_TEST_POSTGRES") {
        Ok(url) => url,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PDVAULT_TEST_POSTGRES is not set, and CI must run the PostgreSQL tests")
        }
        Err(_) => return eprintln!("skipped: PDVAULT_TEST_POSTGRES is not set"),
    };
    let schema = format!("pdv_cli_{:016x}", rand::random::<u64>());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    ok(&dir, &["init"], None);
    let put = "put --subject alice@example.com --category contact --purpose billing";
    let put: Vec<&str> = put.split(' ').collect();
    let id = ok(&dir, &put, Some(b"555-0100")).trim().to_owned();
    let out = json(&ok(
        &dir,
        &[
            "--json",
            "migrate",
            "--to-store",
            &url,
            "--to-schema",
            &schema,
            "--retire-source",
        ],
        None,
    ));
    assert_eq!(out["source_retired"], 1, "{out}");
    assert_eq!(
        out["verify"]["problems"].as_array().map(Vec::len),
        Some(0),
        "{out}"
    );
    assert!(fails(&dir, &["list", "--subject", "alice@example.com"]).contains("no longer exists"));
    let store = ["--store", &url, "--store-schema", &schema];
    let get = [
        "get",
        "--subject",
        "alice@example.com",
        "--record",
        &id,
        "--purpose",
        "billing",
    ];
    assert_eq!(ok(&dir, &[&store[..], &get].concat(), None), "555-0100");
    let verify = ok(&dir, &[&store[..], &["verify"]].concat(), None);
    assert!(verify.contains("logical only"), "{verify}");
    assert!(verify.contains("the vault is whole"), "{verify}");
    // A command that needs a directory says so.
    assert!(fails(&dir, &[&store[..], &["backup", "--out", "x"]].concat()).contains("directory"));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}

/// `put --collected-at`: data migrated into the vault keeps its collection time (RFC 3339 or a
/// date) and retention counts from it; a time in the future is refused and nothing is written.
#[test]
fn put_collected_at_keeps_the_collection_time_and_refuses_the_future() {
    use jiff::ToSpan;
    let tmp = tempfile::tempdir().unwrap();
    let dir = init_seed_001(tmp.path());
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let ago = |months: i64| now.checked_sub(months.months()).unwrap();
    let s = ["--subject", "migrated@example.com"];
    let put = |at: &str| {
        let args = [
            "--category",
            "usage",
            "--basis",
            "legitimate-interests",
            "--collected-at",
            at,
        ];
        ok(&dir, &[&["put"][..], &s, &args].concat(), Some(b"x"))
            .trim()
            .to_owned()
    };
    // Usage is kept 12 months.
    let old_at = ago(13).timestamp();
    let old = put(&old_at.to_string());
    let recent_day = ago(11).date().to_string();
    let recent = put(&recent_day);
    let list = json(&ok(&dir, &[&["--json", "list"][..], &s].concat(), None));
    let collected = |id: &str| -> jiff::Timestamp {
        let r = list.as_array().unwrap().iter().find(|r| r["record"] == id);
        r.unwrap()["collected_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(collected(&old), old_at);
    assert_eq!(
        collected(&recent),
        format!("{recent_day}T00:00:00Z").parse().unwrap()
    );

    // A collection time in the future (or no time at all) is refused: not even the subject is
    // created.
    let carol = ["--subject", "carol@example.com"];
    let tomorrow = now.checked_add(1.day()).unwrap().timestamp().to_string();
    let args = [
        "--category",
        "usage",
        "--basis",
        "legitimate-interests",
        "--collected-at",
        &tomorrow,
    ];
    let e = fails(&dir, &[&["put"][..], &carol, &args].concat());
    assert!(e.contains("in the future"), "{e}");
    let args = [
        "--category",
        "usage",
        "--basis",
        "legitimate-interests",
        "--collected-at",
        "last week",
    ];
    let e = fails(&dir, &[&["put"][..], &carol, &args].concat());
    assert!(e.contains("invalid date or time"), "{e}");
    assert!(fails(&dir, &[&["list"][..], &carol].concat()).contains("no such subject"));

    // The sweep destroys what was collected 13 months ago, not what was 11 months ago.
    ok(&dir, &["sweep"], None);
    let get = |id: &str| pdvault(&dir, &[&["get"][..], &s, &["--record", id]].concat(), None);
    assert!(!get(&old).status.success());
    assert!(get(&recent).status.success());
}

/// `sweep --dry-run --at`: what a sweep at a later date would destroy and keep, per category and
/// why, writing nothing; `--at` only with `--dry-run`, and not before now.
#[test]
fn sweep_dry_run_at_says_what_a_later_sweep_destroys_and_why() {
    use jiff::ToSpan;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let policy = format!(
        "{}/policies/seed-001-m-exe.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    ok(&dir, &["init", "--policy", &policy], None);
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let ago = |months: i64| now.checked_sub(months.months()).unwrap().date().to_string();
    let s = ["--subject", "migrated@example.com"];
    let put = |category: &str, at: &str| {
        // The basis seed 001 states for both categories.
        let args = [
            "--category",
            category,
            "--basis",
            "legitimate-interests",
            "--collected-at",
            at,
        ];
        ok(&dir, &[&["put"][..], &s, &args].concat(), Some(b"x"))
            .trim()
            .to_owned()
    };
    // Usage is kept 12 months, communication 3 years (this one is past them, and held).
    let usage = put("usage", &ago(11));
    let talk = put("communication", &ago(48));
    let hold = json(&ok(
        &dir,
        &[
            &["--json", "hold", "place"][..],
            &s,
            &["--record", &talk, "--reason", "dispute"],
        ]
        .concat(),
        None,
    ));
    assert!(hold["hold"].is_string());
    let sweep = json(&ok(&dir, &["--json", "sweep"], None));
    assert_eq!(sweep["by_category"]["communication"]["held"], 1, "{sweep}");
    assert!(sweep["by_category"].get("usage").is_none(), "{sweep}");

    // `--at` needs `--dry-run`, and a time not before now.
    let out = pdvault(&dir, &["sweep", "--at", "2099-01-01"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dry-run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = fails(&dir, &["sweep", "--dry-run", "--at", "2000-01-01"]);
    assert!(e.contains("not at 2000-01-01T00:00:00Z"), "{e}");

    // In two years the usage record is past its 12 months; the held record stays. Nothing is
    // written.
    let audit = ok(&dir, &["--json", "audit", "show"], None);
    let day = now.checked_add(2.years()).unwrap().date().to_string();
    let plan = json(&ok(
        &dir,
        &["--json", "sweep", "--dry-run", "--at", &day],
        None,
    ));
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        format!("{day}T00:00:00Z").parse().unwrap()
    );
    assert_eq!(plan["by_category"]["usage"]["expired"], 1, "{plan}");
    assert_eq!(plan["by_category"]["usage"]["held"], 0, "{plan}");
    assert_eq!(plan["by_category"]["communication"]["held"], 1, "{plan}");
    let text = ok(&dir, &["sweep", "--dry-run", "--at", &day], None);
    assert!(
        text.starts_with(&format!(
            "(dry run at {day}T00:00:00Z) erased 0 records and 1 categories, retained 1,"
        )),
        "{text}"
    );
    for line in [
        "  usage          erased 1 (1 past maximum retention, 0 pending erasure), retained 0 (0 held, 0 minimum retention)",
        "  communication  erased 0 (0 past maximum retention, 0 pending erasure), retained 1 (1 held, 0 minimum retention)",
    ] {
        assert!(text.lines().any(|l| l == line), "{text}");
    }
    assert_eq!(ok(&dir, &["--json", "audit", "show"], None), audit);
    let get = |id: &str| pdvault(&dir, &[&["get"][..], &s, &["--record", id]].concat(), None);
    assert!(get(&usage).status.success());
    assert!(get(&talk).status.success());
}

#[test]
fn a_role_reaches_what_it_is_granted_and_its_refusals_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let seed = format!(
        "{}/policies/seed-001-m-exe.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    ok(&dir, &["init", "--policy", &seed], None);
    let s = ["--subject", "dana@example.com"];
    let id = ok(
        &dir,
        &[
            &["put"][..],
            &s,
            &[
                "--category",
                "account",
                "--purpose",
                "support",
                "--basis",
                "contract",
            ],
        ]
        .concat(),
        Some(b"dana's account"),
    );
    let id = id.trim();
    let bob = ["--actor", "bob", "--role", "support"];
    let read =
        |p: &'static str| [&bob[..], &["get"], &s, &["--record", id, "--purpose", p]].concat();
    assert_eq!(ok(&dir, &read("support"), None), "dana's account");
    assert!(fails(&dir, &read("marketing")).contains("purpose"));
    assert!(fails(&dir, &[&bob[..], &["erase"], &s].concat()).contains("not granted erase"));
    assert!(fails(&dir, &[&bob[..], &["stats"]].concat()).contains("not granted administer"));
    assert!(
        fails(&dir, &[&bob[..], &["policy", "set", &seed]].concat())
            .contains("administrative command")
    );
    assert!(fails(&dir, &["--actor", "eve", "--role", "root", "stats"]).contains("no role"));
    // The administrative handle sees every refusal, with the principal and the role.
    let audit = json(&ok(&dir, &["--json", "audit", "show"], None));
    let refused: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["op"] == "refused")
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("bob", "support"),
            ("bob", "support"),
            ("bob", "support"),
            ("eve", "root")
        ],
        "{audit}"
    );
    // Objection, age status and a guardian's consent from the CLI.
    ok(
        &dir,
        &[&["object"][..], &s, &["--purpose", "analytics"]].concat(),
        None,
    );
    ok(
        &dir,
        &[&["object"][..], &s, &["--purpose", "analytics", "--lift"]].concat(),
        None,
    );
    assert!(
        ok(
            &dir,
            &[&["age"][..], &s, &["--status", "minor"]].concat(),
            None
        )
        .contains("minor")
    );
    ok(
        &dir,
        &[
            &["consent", "grant"][..],
            &s,
            &["--purpose", "newsletter", "--guardian"],
        ]
        .concat(),
        None,
    );
    let policy = json(&ok(&dir, &["--json", "policy", "check", &seed], None));
    assert_eq!(
        policy["roles"],
        serde_json::json!(["analyst", "privacy-officer", "support"])
    );
}

// `request verify` records who verified a requester's identity and how; under a policy that
// requires it, `request close` is refused until then. A custom kind the policy declares opens
// with its hour deadline; an undeclared one is refused.
#[test]
fn request_verify_then_close_under_a_policy_that_requires_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        "custom_requests = [\"inquiry\"]\n[requests]\ninquiry = \"48 hours\"\nverify_identity = true\n",
    )
    .unwrap();
    ok(&dir, &["init", "--policy", policy.to_str().unwrap()], None);
    let s = ["--subject", "frank@example.com"];
    ok(
        &dir,
        &[&["put"][..], &s, &["--category", "contact"]].concat(),
        Some(b"phone"),
    );
    assert!(
        fails(
            &dir,
            &[&["request", "open"][..], &s, &["--kind", "complaint"]].concat()
        )
        .contains("unknown request kind `complaint`")
    );
    let req = json(&ok(
        &dir,
        &[
            &["--json", "request", "open"][..],
            &s,
            &["--kind", "inquiry"],
        ]
        .concat(),
        None,
    ));
    assert_eq!(req["kind"], "inquiry");
    let id = req["id"].as_str().unwrap();
    let err = fails(&dir, &["request", "close", id]);
    assert!(err.contains(id) && err.contains("verif"), "{err}");
    let listed = ok(&dir, &["request", "list"], None);
    assert!(
        listed.contains("inquiry") && listed.contains("(in 47h)"),
        "{listed}"
    );
    assert!(listed.contains("identity not verified"), "{listed}");
    assert!(
        fails(
            &dir,
            &[
                "request", "verify", "--id", id, "--by", "Dana", "--method", ""
            ]
        )
        .contains("verification method")
    );
    let verified = json(&ok(
        &dir,
        &[
            "--json",
            "request",
            "verify",
            "--id",
            id,
            "--by",
            "Dana",
            "--method",
            "passport seen",
        ],
        None,
    ));
    assert_eq!(verified["identity_verified"]["by"], "Dana");
    assert_eq!(verified["identity_verified"]["method"], "passport seen");
    assert!(verified["identity_verified"]["at"].is_string());
    let listed = ok(&dir, &["request", "list"], None);
    assert!(
        listed.contains("identity verified by Dana (passport seen)"),
        "{listed}"
    );
    assert!(
        fails(
            &dir,
            &[
                "request", "verify", "--id", id, "--by", "Eve", "--method", "call"
            ]
        )
        .contains("already verified")
    );
    ok(&dir, &["request", "close", id], None);
    let shown = ok(&dir, &["audit", "show"], None);
    assert!(
        shown.contains("request-verify") && !shown.contains("passport"),
        "{shown}"
    );
}

#[test]
fn policy_check_accepts_every_shipped_policy_and_names_a_malformed_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let shipped = std::fs::read_dir(format!("{}/policies", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut n = 0;
    for f in shipped {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            assert!(ok(&dir, &["policy", "check", path.to_str().unwrap()], None).contains("valid"));
            n += 1;
        }
    }
    assert_eq!(n, 5);
    for (text, entry) in [
        (
            "[roles.support]\ngrants = [{ ops = [\"reed\"] }]\n",
            "roles.support",
        ),
        (
            "[recipients.broker]\nkind = \"friend\"\ncategories = [\"account\"]\nretention = \"1 year\"\ngrounds = [\"consent\"]\n",
            "recipients.broker",
        ),
        ("[requests]\ninquiry = \"48 hours\"\n", "requests.inquiry"),
    ] {
        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let e = fails(&dir, &["policy", "check", bad.to_str().unwrap()]);
        assert!(e.contains(entry), "{text}: {e}");
    }
}

/// A vault in `tmp` made by `init` under seed policy 001.
fn init_seed_001(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("v");
    let policy = format!(
        "{}/policies/seed-001-m-exe.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    ok(&dir, &["init", "--policy", &policy], None);
    dir
}

#[test]
fn report_json_and_html_match_stats_request_list_hold_list_and_audit_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init_seed_001(tmp.path());
    for i in 0..7 {
        let s = format!("report-subject-{i}@example.com");
        ok(
            &dir,
            &["put", "--subject", &s, "--category", "transaction"],
            Some(b"REPORT-PAYLOAD order"),
        );
        if i < 6 {
            ok(
                &dir,
                &["request", "open", "--subject", &s, "--kind", "access"],
                None,
            );
        }
    }
    ok(
        &dir,
        &[
            "hold",
            "place",
            "--subject",
            "report-subject-0@example.com",
            "--reason",
            "dispute",
            "--reference",
            "CASE-9",
        ],
        None,
    );
    ok(
        &dir,
        &["erase", "--subject", "report-subject-6@example.com"],
        None,
    );

    let report = json(&ok(&dir, &["--json", "report"], None));
    let audit = json(&ok(&dir, &["--json", "audit", "verify"], None));
    let stats = json(&ok(&dir, &["--json", "stats"], None));
    let requests = json(&ok(&dir, &["--json", "request", "list"], None));
    let overdue = json(&ok(&dir, &["--json", "request", "list", "--overdue"], None));
    let holds = json(&ok(&dir, &["--json", "hold", "list"], None));

    assert_eq!(report["holdings"]["records"], stats["records"]);
    assert_eq!(
        report["holdings"]["by_category"]["transaction"],
        stats["by_category"]["transaction"]
    );
    let access = report["requests"]["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "access")
        .unwrap();
    assert_eq!(
        access["opened"].as_u64().unwrap(),
        requests.as_array().unwrap().len() as u64
    );
    assert_eq!(access["open"], 6);
    assert_eq!(access["deadline"], "30 days");
    assert_eq!(
        access["overdue"].as_u64().unwrap(),
        overdue.as_array().unwrap().len() as u64
    );
    let holds = holds.as_array().unwrap();
    assert_eq!(report["holds"].as_array().unwrap().len(), holds.len());
    assert_eq!(report["holds"][0]["hold"], holds[0]["id"]);
    assert_eq!(report["holds"][0]["reference"], "CASE-9");
    assert_eq!(report["integrity"]["audit_entries"], audit["entries"]);
    assert_eq!(report["integrity"]["vault_whole"], true);
    // The erase call erased what no minimum protected: transactions stay 7 years.
    assert_eq!(report["erasures"]["by_cause"]["erasure-call"], "suppressed");

    let page = tmp.path().join("report.html");
    let out = ok(&dir, &["report", "--out", page.to_str().unwrap()], None);
    assert!(out.contains("report written to"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    for id in [
        "policy",
        "holdings",
        "erasures",
        "requests",
        "holds",
        "integrity",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\"")), "{id}");
    }
    let text = format!("{report}{html}");
    assert!(!text.contains("report-subject") && !text.contains("REPORT-PAYLOAD"));

    assert!(fails(&dir, &["report"]).contains("--out"));
    assert!(
        fails(
            &dir,
            &[
                "--json",
                "report",
                "--since",
                "2030-01-01",
                "--until",
                "2020-01-01"
            ]
        )
        .contains("report period")
    );
    assert!(fails(&dir, &["--json", "report", "--since", "yesterday"]).contains("yesterday"));
}
