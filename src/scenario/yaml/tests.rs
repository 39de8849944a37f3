//! Tests of the YAML reader: the tree and its positions, typed scalars, aliases and their
//! bounds, syntax errors, and every deserialization error of a file with its place.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;

use super::*;
use crate::scenario::Scenario;
use crate::units::{Dur, Size};

fn node(src: &str) -> Node {
    parse(src).expect("test YAML parses")
}

fn entries(n: &Node) -> &[(Node, Node)] {
    match &n.value {
        Value::Map(e) => e,
        other => panic!("not a mapping: {other:?}"),
    }
}

fn items(n: &Node) -> &[Node] {
    match &n.value {
        Value::Seq(i) => i,
        other => panic!("not a sequence: {other:?}"),
    }
}

fn at(n: &Node) -> (usize, usize) {
    (n.mark.line, n.mark.column)
}

/// `(path, line, column, message)` of each error.
fn errors_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    src: &str,
) -> Vec<(String, usize, usize, String)> {
    from_str::<T>(src)
        .expect_err("the document has errors")
        .into_iter()
        .map(|e| (e.path, e.line, e.column, e.message))
        .collect()
}

#[test]
fn nodes_know_their_line_column_and_byte_index() {
    let src = "name: demo\nsteps:\n  - name: a\n    http: {url: 'x', n: 2}\n    l: |\n      text\n";
    let root = node(src);
    // A block mapping starts at its first key.
    assert_eq!(at(&root), (1, 1));
    let top = entries(&root);
    assert_eq!(top[0].0.scalar(), Some("name"));
    assert_eq!(at(&top[0].1), (1, 7));
    assert_eq!(top[0].1.mark.index, 6);
    let steps = items(&top[1].1);
    assert_eq!(at(&top[1].1), (3, 3));
    assert_eq!(at(&steps[0]), (3, 5));
    let step = entries(&steps[0]);
    let http = &step[1].1;
    assert_eq!(at(http), (4, 11), "a flow mapping starts at its brace");
    assert_eq!(at(&entries(http)[0].1), (4, 17));
    assert!(matches!(
        &entries(http)[0].1.value,
        Value::Scalar {
            style: Style::SingleQuoted,
            verbatim: true,
            ..
        }
    ));
    assert!(matches!(
        &step[2].1.value,
        Value::Scalar { style: Style::Literal, text, .. } if text == "text\n"
    ));
}

#[test]
fn columns_count_characters_and_indexes_count_bytes() {
    let root = node("é: ü\nkey: \"ünïcödé\"\n");
    let top = entries(&root);
    assert_eq!(at(&top[0].1), (1, 4));
    assert_eq!(top[0].1.mark.index, 4);
    assert_eq!(at(&top[1].1), (2, 6));
    assert_eq!(
        &"é: ü\nkey: \"ünïcödé\"\n"[top[1].1.mark.index..][..1],
        "\""
    );
    assert!(matches!(
        &top[1].1.value,
        Value::Scalar { verbatim: true, .. }
    ));
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_key() {
    let src = "\u{feff}name: x\nb: 'y'\n";
    let root = node(src);
    let top = entries(&root);
    assert_eq!(top[0].0.scalar(), Some("name"));
    assert_eq!((at(&top[0].0), top[0].0.mark.index), ((1, 2), 3));
    assert_eq!(
        (at(&top[1].1), &src[top[1].1.mark.index..][..1]),
        ((2, 4), "'")
    );
}

#[test]
fn an_empty_value_points_at_its_key_and_an_empty_file_is_null() {
    let root = node("a:\nb: 1\n");
    let a = &entries(&root)[0];
    assert_eq!(a.1.scalar(), Some(""));
    assert_eq!(at(&a.1), (1, 1));
    assert_eq!(node("").scalar(), Some(""));
    assert_eq!(at(&node("# only a comment\n")), (1, 17));
}

#[test]
fn tags_are_kept_as_written() {
    let root = node("a: !!str 5\nb: !local x\n");
    let top = entries(&root);
    assert_eq!(top[0].1.tag.as_deref(), Some("!!str"));
    assert_eq!(top[1].1.tag.as_deref(), Some("!local"));
}

#[test]
fn aliases_are_copies_placed_at_the_alias() {
    let root = node("base: &b {x: 1, y: [a, b]}\nuse: *b\n");
    let top = entries(&root);
    assert_eq!(top[0].1.value, top[1].1.value);
    assert_eq!(at(&top[1].1), (2, 6));
    let e = parse("a: &a [1, *a]\n").unwrap_err();
    assert_eq!((e.line, e.column), (1, 11), "{e}");
}

#[test]
fn a_billion_laughs_fails_cleanly() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = parse(&src).unwrap_err();
    assert!(
        e.message.contains("aliases expand to too many nodes"),
        "{e}"
    );
    assert!(e.line >= 4 && e.line <= 10, "{e:?}");
}

#[test]
fn nesting_is_bounded_also_through_aliases() {
    let deep = format!("a: {}1{}\n", "[".repeat(200), "]".repeat(200));
    let e = parse(&deep).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
    assert_eq!((e.line, e.column), (1, 4 + MAX_DEPTH - 1));
    let half = "[".repeat(100) + &"]".repeat(100);
    let src = format!(
        "a: &a {half}\nb: {}*a{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(parse(&src)
        .unwrap_err()
        .message
        .contains("nested too deeply"));
    assert!(parse(&format!("a: &a {half}\nb: [*a]\n")).is_ok());
}

#[test]
fn a_duplicate_key_is_an_error_at_the_second_key() {
    let e = parse("name: a\nsteps:\n  - name: x\n    name: y\n").unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (4, 5, "duplicate key `name`")
    );
    // The same key in different mappings is fine.
    assert!(parse("a: {k: 1}\nb: {k: 2}\n").is_ok());
}

#[test]
fn a_second_document_is_an_error_where_it_starts() {
    let e = parse("name: a\n---\nname: b\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("second"), "{e}");
    assert!(parse("---\nname: a\n...\n").is_ok());
}

#[test]
fn syntax_errors_come_from_yaml_rust2_and_point_at_the_open_construct() {
    let e = parse("name: x\nsteps:\n  - {url: \"abc}\n    x: 1\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 11));
    assert_eq!(
        e.message,
        "while scanning a quoted scalar, found unexpected end of stream"
    );
    let e = parse("name: x\nsteps: [1, {a: 2\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 12), "{e}");
    let e = parse("a: b\n  c: d\n").unwrap_err();
    assert_eq!(e.line, 2, "{e:?}");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Typed {
    port: u32,
    text: String,
    #[serde(default)]
    maybe: Option<i64>,
    ratio: f64,
    on: bool,
    #[serde(default)]
    flow: Option<Mode>,
    #[serde(default)]
    shape: Option<Shape>,
    #[serde(default)]
    wrapped: Option<Wrapped>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    json: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    AuthorizationCode,
    Password,
}

#[derive(Debug, Deserialize, PartialEq)]
enum Shape {
    Circle(f64),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, Deserialize, PartialEq)]
struct Wrapped(String);

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Arg {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[test]
fn scalars_are_typed_by_the_core_schema_and_strings_take_any_scalar() {
    let t: Typed = from_str(
        "port: 0x1F90\ntext: 8080\nmaybe: ~\nratio: .inf\non: True\nflow: password\n\
         shape: {Rect: {w: 2, h: 3}}\nwrapped: 'w'\nargs: [SET, 5, -2, 1.5, true, \"7\"]\n\
         json: {a: [1, null, x]}\n",
    )
    .expect("the test document is valid");
    assert_eq!(t.port, 8080);
    assert_eq!(t.text, "8080");
    assert_eq!(t.maybe, None);
    assert_eq!(t.ratio, f64::INFINITY);
    assert!(t.on);
    assert_eq!(t.flow, Some(Mode::Password));
    assert_eq!(t.shape, Some(Shape::Rect { w: 2, h: 3 }));
    assert_eq!(t.wrapped, Some(Wrapped("w".into())));
    assert_eq!(
        t.args,
        vec![
            Arg::Str("SET".into()),
            Arg::Int(5),
            Arg::Int(-2),
            Arg::Float(1.5),
            Arg::Bool(true),
            Arg::Str("7".into()),
        ]
    );
    assert_eq!(t.json, Some(serde_json::json!({"a": [1, null, "x"]})));
    let t: Typed =
        from_str("port: 1\ntext: ''\nratio: 2\non: false\nshape: {Circle: 1.5}\nmaybe: -0o17\n")
            .expect("the test document is valid");
    assert_eq!(
        (t.ratio, t.shape, t.maybe),
        (2.0, Some(Shape::Circle(1.5)), Some(-15))
    );
}

#[test]
fn quoted_and_str_tagged_scalars_are_strings() {
    let errors = errors_of::<Typed>("port: \"8080\"\ntext: x\nratio: !!str 1\non: !!bool yes\n");
    let messages: Vec<&str> = errors.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(
        messages,
        [
            "invalid type: string \"8080\", expected u32",
            "invalid type: string \"1\", expected f64",
            "invalid value: string \"yes\", expected a boolean",
        ]
    );
    let e = errors_of::<Typed>("port: !custom 1\ntext: x\nratio: 1\non: true\n");
    assert!(e[0].3.contains("tag `!custom` is not supported"), "{e:?}");
}

#[test]
fn enum_variants_are_checked_where_they_are_written() {
    let e = errors_of::<Typed>(
        "port: 1\ntext: x\nratio: 1\non: true\nflow: pasword\nshape: {Square: 1}\n",
    );
    assert_eq!(
        e,
        [
            (
                "flow".to_string(),
                5,
                7,
                "unknown variant `pasword`, expected `authorization_code` or `password`"
                    .to_string()
            ),
            (
                "shape".to_string(),
                6,
                9,
                "unknown variant `Square`, expected `Circle` or `Rect`".to_string()
            ),
        ]
    );
}

#[test]
fn a_capture_map_reports_its_unknown_key_with_a_suggestion_as_data() {
    let src = "name: x\nsteps:\n  - name: a\n    http: {url: 'https://x/'}\n    capture:\n      t: {query: body, secrte: true}\n";
    let errors = from_str::<Scenario>(src).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (6, 24));
    assert_eq!(errors[0].path, "steps[0].capture.t");
    let unknown = errors[0].unknown_field.as_ref().expect("structured");
    assert_eq!(
        (unknown.field.as_str(), unknown.expected),
        ("secrte", &["query", "secret"][..])
    );
}

#[test]
fn units_and_model_visitors_read_their_values() {
    let d: Dur = from_str("90").expect("the test document is valid");
    assert_eq!(d.0.as_secs(), 90);
    let d: Dur = from_str("1.5m").expect("the test document is valid");
    assert_eq!(d.0.as_secs(), 90);
    let s: Size = from_str("64KiB").expect("the test document is valid");
    assert_eq!(s.0, 65536);
    let e = errors_of::<Dur>("5 seconds");
    assert_eq!((e[0].1, e[0].2), (1, 1));
    assert!(e[0].3.starts_with("invalid duration `5 seconds`"), "{e:?}");
}

#[test]
fn every_unknown_field_of_a_map_is_reported_at_its_key() {
    let src = "name: x\nsteps:\n  - name: a\n    http:\n      url: https://x/\n      hedaers: {}\n      bdy: x\n";
    let errors = from_str::<Scenario>(src).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (6, 7));
    assert_eq!((errors[1].line, errors[1].column), (7, 7));
    assert_eq!(errors[0].path, "steps[0].http");
    let unknown = errors[0].unknown_field.as_ref().expect("structured");
    assert_eq!(unknown.field, "hedaers");
    assert!(unknown.expected.contains(&"headers"));
    assert!(errors[1]
        .message
        .starts_with("unknown field `bdy`, expected one of `method`"));
}

#[test]
fn errors_in_several_steps_and_sections_are_all_reported() {
    let src = "name: x\n\
               defaults:\n  timeout: [1]\n\
               steps:\n\
               \x20 - name: a\n    http: {url: 'https://x/'}\n    timeout: 5 seconds\n\
               \x20 - name: b\n    http: {url: 'https://x/'}\n\
               \x20 - name: c\n    htp: {url: 'https://x/'}\n    retry: {attempts: three}\n";
    let errors = errors_of::<Scenario>(src);
    let places: Vec<(&str, usize, usize)> =
        errors.iter().map(|e| (e.0.as_str(), e.1, e.2)).collect();
    assert_eq!(
        places,
        [
            ("defaults.timeout", 3, 12),
            ("steps[0].timeout", 7, 14),
            ("steps[2]", 11, 5),
            ("steps[2].retry.attempts", 12, 23),
        ],
        "{errors:?}"
    );
    assert_eq!(errors[3].3, "invalid type: string \"three\", expected u32");
}

#[test]
fn a_missing_field_is_reported_at_its_mapping_once() {
    let errors = errors_of::<Scenario>("name: x\nsteps:\n  - http: {url: 'https://x/'}\n");
    assert_eq!(
        errors,
        [(
            "steps[0]".to_string(),
            3,
            5,
            "missing field `name`".to_string()
        )]
    );
    // A required field whose value fails is not also missing.
    let errors = errors_of::<Scenario>("name: x\nschedule: {interval: soon}\nsteps: []\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].1, errors[0].2), (2, 22));
}

#[test]
fn a_failed_map_entry_or_element_does_not_hide_the_next() {
    let errors = errors_of::<IndexMap<String, Vec<u8>>>("a: [1, x, 2, y]\nb: 3\nc: [300]\n");
    let places: Vec<(String, usize, usize)> = errors.into_iter().map(|e| (e.0, e.1, e.2)).collect();
    assert_eq!(
        places,
        [
            ("a[1]".to_string(), 1, 8),
            ("a[3]".to_string(), 1, 14),
            ("b".to_string(), 2, 4),
            ("c[0]".to_string(), 3, 5),
        ]
    );
}

#[test]
fn a_sub_node_is_read_with_its_path() {
    let root = node("spec:\n  a: 1\n  b: x\n");
    let spec = &entries(&root)[0].1;
    let ok: BTreeMap<String, String> =
        from_node_at(spec, "steps[3].http").expect("both values are strings");
    assert_eq!(ok.len(), 2);
    let errors = from_node_at::<BTreeMap<String, u8>>(spec, "steps[3].http").unwrap_err();
    assert_eq!(errors[0].path, "steps[3].http.b");
    assert_eq!(
        errors[0].text(),
        format!("steps[3].http.b: {}", errors[0].message)
    );
}

#[test]
fn the_example_scenarios_deserialize() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("the repository has scenarios/") {
        let path = entry.expect("a readable directory entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let src = std::fs::read_to_string(&path).expect("example scenarios are UTF-8 files");
            if let Err(e) = from_str::<Scenario>(&src) {
                panic!("{}: {e:?}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 3);
}
