//! Checks of action.yml itself: the conventions it promises (descriptions, quoted defaults,
//! inputs only through env, bash everywhere) and that its defaults are the ones the
//! orchestrator applies to an empty input.

use bluegreen::action::inputs::{Inputs, env_name};
use yaml_rust2::{Yaml, YamlLoader};

fn action() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn entries(y: &Yaml) -> Vec<(String, Yaml)> {
    y.as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

#[test]
fn inputs_and_outputs_follow_the_conventions() {
    let action = action();
    for (name, input) in entries(&action["inputs"]) {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name} is not kebab-case"
        );
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name} has no description"
        );
        let required = input["required"].as_bool().unwrap_or(false);
        assert!(
            required || input["default"].as_str().is_some(),
            "{name} needs a quoted default"
        );
    }
    for (name, output) in entries(&action["outputs"]) {
        assert!(
            output["description"].as_str().is_some(),
            "output {name} has no description"
        );
    }
    for step in action["runs"]["steps"].as_vec().unwrap() {
        assert_eq!(step["shell"].as_str(), Some("bash"), "{step:?}");
        let run = step["run"].as_str().unwrap();
        assert!(
            !run.contains("${{"),
            "expressions must reach scripts through env: {run}"
        );
    }
}

#[test]
fn every_input_is_passed_to_the_orchestrator() {
    let action = action();
    let deploy = action["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some("deploy"))
        .unwrap()
        .clone();
    for (name, _) in entries(&action["inputs"]) {
        let env = deploy["env"][env_name(&name).as_str()]
            .as_str()
            .unwrap_or("");
        assert_eq!(env, format!("${{{{ inputs.{name} }}}}"), "input {name}");
    }
}

#[test]
fn action_defaults_match_what_an_empty_input_means() {
    let mut base = crate::support::valid_env();
    base.insert(env_name("version"), "v1".into());
    let empty = Inputs::from_env(&base).unwrap();
    for (name, input) in entries(&action()["inputs"]) {
        let Some(default) = input["default"].as_str() else {
            continue;
        };
        if default.is_empty() || base.contains_key(&env_name(&name)) {
            continue;
        }
        base.insert(env_name(&name), default.to_owned());
    }
    let defaults = Inputs::from_env(&base).unwrap();
    assert_eq!(
        serde_json::to_value(&defaults.plan).unwrap(),
        serde_json::to_value(&empty.plan).unwrap()
    );
    assert_eq!(defaults.hosts, empty.hosts);
    assert_eq!(defaults.image_transfer, empty.image_transfer);
    assert_eq!(defaults.notify_on, empty.notify_on);
}

#[test]
fn the_end_to_end_workflow_can_set_every_input() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/deploy.yml"))
            .unwrap();
    let workflow = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let step = workflow["jobs"]["deploy"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["uses"].as_str() == Some("./"))
        .unwrap()
        .clone();
    for (name, _) in entries(&action()["inputs"]) {
        assert!(
            step["with"][name.as_str()].as_str().is_some(),
            "tests/e2e/deploy.yml does not pass {name}"
        );
    }
}

/// The rows of the README table whose header row starts with `header`.
fn readme_table(header: &str) -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// `rows` as the lines of a README table, to copy from a failure.
fn markdown_rows(rows: &[Vec<String>]) -> String {
    rows.iter()
        .map(|cells| format!("| {} |\n", cells.join(" | ")))
        .collect()
}

#[test]
fn the_readme_lists_every_input_and_output_as_action_yml_states_it() {
    let a = action();
    let inputs: Vec<Vec<String>> = entries(&a["inputs"])
        .into_iter()
        .map(|(name, input)| {
            let default = input["default"].as_str().unwrap_or("");
            vec![
                format!("`{name}`"),
                if input["required"].as_bool() == Some(true) {
                    "required".into()
                } else if default.is_empty() {
                    String::new()
                } else {
                    format!("`{default}`")
                },
                input["description"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    assert_eq!(
        readme_table("| input | default | description |"),
        inputs,
        "the README's Inputs table, as action.yml states it:\n{}",
        markdown_rows(&inputs)
    );
    let outputs: Vec<Vec<String>> = entries(&a["outputs"])
        .into_iter()
        .map(|(name, output)| {
            vec![
                format!("`{name}`"),
                output["description"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    assert_eq!(
        readme_table("| output | description |"),
        outputs,
        "the README's Outputs table, as action.yml states it:\n{}",
        markdown_rows(&outputs)
    );
}
