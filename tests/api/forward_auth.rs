//! Forward-auth as proxies ask it: the tenant's `[[access]]` rules, and
//! `check` errors for bad rules.

mod check {
    //! Bad rules are `check` errors naming the file and the key.

    use crate::helpers::{Setup, pixyle_tenant};

    fn error_of(rule: &str) -> polyauth::config::ConfigError {
        let dir = tempfile::tempdir().unwrap();
        let tenant = pixyle_tenant("t", "/t", &format!("[[access]]\n{rule}\n"));
        let config = Setup::new().tenant("t", tenant).write(dir.path());
        polyauth::config::load(&config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {rule}"))
    }

    #[test]
    fn bad_rules_are_rejected_naming_file_and_key() {
        let cases = [
            ("paths = []", "access[0].paths", "at least one"),
            (
                "paths = [\"/a**b\"]",
                "access[0].paths[0]",
                "`**` inside a segment",
            ),
            (
                "paths = [\"/ok\", \"a**b\"]",
                "access[0].paths[1]",
                "must start with `/`",
            ),
            (
                "paths = [\"public/**\"]",
                "access[0].paths[0]",
                "must start with `/`",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"open\"",
                "access[0].policy",
                "unknown policy \"open\"",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"public\"\nroles = [\"x\"]",
                "access[0].roles",
                "only with",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"deny\"\nroles = [\"x\"]",
                "access[0].roles",
                "only with",
            ),
            (
                "paths = [\"/a\"]\nmethods = [\"get\"]",
                "access[0].methods[0]",
                "upper case",
            ),
            (
                "paths = [\"/a\"]\nmethods = []",
                "access[0].methods",
                "empty list",
            ),
            (
                "paths = [\"/a\"]\nmethods = \"GET\"",
                "access[0].methods",
                "sequence",
            ),
            (
                "paths = [\"/a\"]\nroles = [\"a,b\"]",
                "access[0].roles[0]",
                "`,`",
            ),
            ("path = [\"/a\"]", "access[0].path", "unknown field"),
        ];
        for (rule, key, problem) in cases {
            let error = error_of(rule);
            assert!(error.file.ends_with("t.toml"), "{rule}: {error}");
            assert_eq!(error.key, key, "{rule}: {error}");
            assert!(error.problem.contains(problem), "{rule}: {error}");
        }
    }

    #[test]
    fn polyauth_check_names_the_file_and_key_of_a_bad_rule() {
        let dir = tempfile::tempdir().unwrap();
        let rules = "[[access]]\npaths = [\"/ok\"]\n[[access]]\npaths = [\"/x/a**b\"]\n";
        let tenant = pixyle_tenant("t", "/t", rules);
        let config = Setup::new().tenant("t", tenant).write(dir.path());
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("t.toml: `access[1].paths[0]`: \"/x/a**b\""),
            "{stderr}"
        );
    }
}
