//! The README's quick-start examples, run as written (the gateway address
//! swapped for this test's) with the official OpenAI and Anthropic SDKs.

use std::process::Command;

use llm_gateway_e2e::stack::*;

/// The fenced code blocks of one language in the README.
fn blocks(lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let fence = format!("```{lang}\n");
    readme.split(&fence).skip(1).filter_map(|rest| rest.split("```").next()).map(str::to_string).collect()
}

fn run(program: &str, args: &[&str], code: &str, stack: &Stack) -> String {
    let code = code.replace("http://127.0.0.1:10000", &stack.url(""));
    let out = Command::new(program).args(args).arg(&code).env("KEY", TEST_KEY).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{code}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn quick_start_examples_work_as_written() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let curl = blocks("sh").into_iter().find(|b| b.contains("curl")).expect("a curl example");
    assert!(run("bash", &["-c"], &curl, stack).contains("Hello from mock-openai."));
    let python = repo_root().join(".venv/bin/python");
    let python = python.to_str().unwrap();
    let examples = blocks("python");
    assert!(examples.len() >= 2, "OpenAI and Anthropic SDK examples");
    for code in examples {
        let code = format!("import os\nKEY = os.environ['KEY']\n{code}");
        let out = run(python, &["-W", "ignore", "-c"], &code, stack);
        assert!(out.contains("Hello from mock-"), "{out}");
    }
}
