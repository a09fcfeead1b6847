//! Grants of equal specificity: no conflict when the values agree or the selectors
//! cannot overlap.

use envoi::policy::load_str;

use crate::api::helpers::*;

// ---- Conflicts ----

#[tokio::test]
async fn equal_specificity_is_no_conflict_when_the_values_agree_or_the_selectors_cannot_overlap() {
    let cases = [
        (
            "the same literal twice",
            r#"
[[grants]]
name = "one"
project = "billing"
env = { K = { value = "same" } }
[[grants]]
name = "two"
project = "billing"
env = { K = { value = "same" } }
"#,
        ),
        (
            "two secrets of the same value",
            r#"
[secrets.a]
value = "same"
[secrets.b]
value = "same"
[[grants]]
name = "one"
project = "billing"
env = { K = "a" }
[[grants]]
name = "two"
project = "billing"
env = { K = "b" }
"#,
        ),
        (
            "globs that cannot match one name",
            r#"
[[grants]]
name = "one"
project = "a-*"
env = { K = { value = "first" } }
[[grants]]
name = "two"
project = "b-*"
env = { K = { value = "second" } }
"#,
        ),
        (
            "`?` globs that cannot match one name",
            r#"
[[grants]]
name = "one"
project = "a?"
env = { K = { value = "first" } }
[[grants]]
name = "two"
project = "b?"
env = { K = { value = "second" } }
"#,
        ),
        (
            "globs on two fields, one of which cannot overlap",
            r#"
[[grants]]
name = "one"
type = "service"
id = "x-*"
env = { K = { value = "first" } }
[[grants]]
name = "two"
type = "job"
id = "*-y"
env = { K = { value = "second" } }
"#,
        ),
        (
            "different exact projects",
            r#"
[[grants]]
name = "one"
project = "billing"
env = { K = { value = "first" } }
[[grants]]
name = "two"
project = "shop"
env = { K = { value = "second" } }
"#,
        ),
        (
            "an ENV key and a FILE path of the same name",
            r#"
[[grants]]
name = "one"
env = { K = { value = "first" } }
[[grants]]
name = "two"
[[grants.files]]
path = "/K"
value = "second"
"#,
        ),
    ];
    for (case, text) in cases {
        if let Err(e) = load_str("no-conflict.toml", text, None) {
            panic!("{case}: the policy does not load: {e}");
        }
    }
    // And they serve.
    let app = serve_app(cases[0].1).await;
    assert_eq!(
        app.answer_for(wl("billing", "t", "i")).await,
        secrets_body(&[env_item("K", "same")])
    );
    let app = serve_app(cases[2].1).await;
    assert_eq!(
        app.answer_for(wl("a-x", "t", "i")).await,
        secrets_body(&[env_item("K", "first")])
    );
    assert_eq!(
        app.answer_for(wl("b-x", "t", "i")).await,
        secrets_body(&[env_item("K", "second")])
    );
}
