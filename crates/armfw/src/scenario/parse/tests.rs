//! The scenario reader's tests.

use super::*;

fn one_step(step: &str) -> Result<Step, FieldError> {
    let s = parse(&format!(r#"{{"name":"t","steps":[{step}]}}"#), Some("t")).unwrap();
    s.steps.into_iter().next().unwrap()
}

#[test]
fn parse_reads_the_example_of_the_format() {
    let s = parse(
        r#"{"name": "cpu_on_then_affinity",
            "vm": {"vcpus": 2, "psci_0_2": true, "power_off": [1], "system_suspend": false, "firmware": "kernel"},
            "steps": [
              {"op": "call", "vcpu": 0, "x": ["0xc4000003", "0x1", "0x40001000", "0x55"]},
              {"op": "entry", "vcpu": 1},
              {"op": "call", "vcpu": 0, "x": ["0xc4000004", "0x1", "0x0"]}]}"#,
        Some("cpu_on_then_affinity"),
    )
    .unwrap();
    let vm = s.vm.unwrap();
    assert_eq!(vm.vcpus, 2);
    assert_eq!(vm.power_off, vec![1]);
    assert_eq!(s.steps.len(), 3);
    assert_eq!(
        s.steps[0],
        Ok(Step {
            vcpu: 0,
            kind: StepKind::Call {
                conduit: Conduit::Hvc,
                x: [0xc400_0003, 1, 0x4000_1000, 0x55]
            }
        })
    );
}

#[test]
fn parse_refuses_a_name_other_than_the_file_name() {
    let e = parse(r#"{"name":"a","steps":[]}"#, Some("b")).unwrap_err();
    assert_eq!(e.to_string(), r#"name: "a" is not the file name "b""#);
}

#[test]
fn parse_refuses_unknown_top_level_keys() {
    assert!(parse(r#"{"name":"a","steps":[],"comment":1}"#, None).is_err());
}

#[test]
fn step_with_a_typo_key_is_malformed() {
    let e = one_step(r#"{"op":"mp_state","vpcu":1}"#).unwrap_err();
    assert_eq!(e.path, "steps[0].vpcu");
}

#[test]
fn step_register_names_are_exact() {
    assert_eq!(
        one_step(r#"{"op":"get","reg":"PSCI_VERSION"}"#)
            .unwrap()
            .kind,
        StepKind::Get {
            reg: 0x6030_0000_0014_0000
        }
    );
    assert!(one_step(r#"{"op":"get","reg":"psci_version"}"#).is_err());
    assert_eq!(
        one_step(r#"{"op":"get","reg":"0x6020000000140000"}"#)
            .unwrap()
            .kind,
        StepKind::Get {
            reg: 0x6020_0000_0014_0000
        }
    );
}

#[test]
fn set_value_must_fit_the_buffer() {
    assert!(one_step(r#"{"op":"set","reg":"0x6020000000140000","value":"0x100000000"}"#).is_err());
    assert!(one_step(r#"{"op":"set","reg":"0x6020000000140000","value":"0xffffffff"}"#).is_ok());
    assert!(one_step(r#"{"op":"set","reg":"0x6000000000140000","value":256}"#).is_err());
}

#[test]
fn call_takes_at_most_four_registers() {
    assert!(one_step(r#"{"op":"call","x":[1,2,3,4,5]}"#).is_err());
    assert!(one_step(r#"{"op":"call","x":[]}"#).is_ok());
    assert!(one_step(r#"{"op":"call","x":[1],"conduit":"svc"}"#).is_err());
}

#[test]
fn filter_fields_are_32_bit_and_actions_are_named_or_numbers() {
    assert_eq!(
        one_step(r#"{"op":"smccc_filter","base":"0x84000000","count":1,"action":"deny"}"#)
            .unwrap()
            .kind,
        StepKind::SmcccFilter {
            base: 0x8400_0000,
            count: 1,
            action: 1
        }
    );
    assert!(
        one_step(r#"{"op":"smccc_filter","base":"0x100000000","count":1,"action":0}"#).is_err()
    );
    assert!(one_step(r#"{"op":"smccc_filter","base":0,"count":1,"action":256}"#).is_err());
    assert!(one_step(r#"{"op":"smccc_filter","base":0,"count":1,"action":"drop"}"#).is_err());
}

#[test]
fn counter_offset_takes_one_64_bit_value() {
    assert_eq!(
        one_step(r#"{"op":"counter_offset","value":"0x8000000000000000"}"#)
            .unwrap()
            .kind,
        StepKind::CounterOffset { offset: 1 << 63 }
    );
    assert!(one_step(r#"{"op":"counter_offset","value":"0x10000000000000000"}"#).is_err());
    assert!(one_step(r#"{"op":"counter_offset"}"#).is_err());
    assert!(one_step(r#"{"op":"counter_offset","value":1,"reg":"0x1"}"#).is_err());
}

#[test]
fn set_mp_state_takes_any_kvm_name() {
    assert_eq!(
        one_step(r#"{"op":"set_mp_state","mp_state":"HALTED"}"#)
            .unwrap()
            .kind,
        StepKind::SetMpState { state: 3 }
    );
    assert!(one_step(r#"{"op":"set_mp_state","mp_state":"OFF"}"#).is_err());
}

#[test]
fn vm_errors_are_kept_for_the_result() {
    let s = parse(r#"{"name":"t","vm":{"vcpus":65},"steps":[]}"#, None).unwrap();
    assert_eq!(s.vm.unwrap_err().path, "vm.vcpus");
    let s = parse(
        r#"{"name":"t","vm":{"vcpus":2,"power_off":[2]},"steps":[]}"#,
        None,
    )
    .unwrap();
    assert_eq!(s.vm.unwrap_err().path, "vm.power_off[0]");
}

#[test]
fn step_errors_have_a_kind_and_the_path_of_the_key() {
    let e = one_step(r#"{"op":"call","x":["0x1","zz"]}"#).unwrap_err();
    assert_eq!(
        (e.kind, e.to_string().as_str()),
        (
            FieldErrorKind::BadValue,
            r#"steps[0].x[1]: expected 0x followed by 1 to 16 hex digits, found "zz""#
        )
    );
    let e = one_step(r#"{"op":"get"}"#).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (FieldErrorKind::MissingField, "steps[0].reg")
    );
    // A key of another op is as unknown as a typo.
    let e = one_step(r#"{"op":"get","reg":"PSCI_VERSION","value":1}"#).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (FieldErrorKind::UnknownField, "steps[0].value")
    );
    let e = one_step(r#"{"op":"mp_state","vcpu":null}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "steps[0].vcpu: expected a number, found null"
    );
}

#[test]
fn parse_refuses_a_key_given_twice_anywhere() {
    let e = parse(r#"{"name":"t","steps":[{"op":"get","op":"set"}]}"#, None).unwrap_err();
    assert_eq!(e.to_string(), "steps[0].op: duplicate key");
    let e = parse(r#"{"name":"t","name":"t","steps":[]}"#, None).unwrap_err();
    assert_eq!(e.to_string(), "name: duplicate key");
}

#[test]
fn parse_tells_text_that_is_not_json_from_a_bad_shape() {
    assert!(matches!(parse("{ nope", None), Err(ParseError::Json(_))));
    assert_eq!(
        parse(r#"["t", []]"#, None).unwrap_err().to_string(),
        "expected an object, found an array"
    );
    assert_eq!(
        parse(r#"{"steps":[]}"#, None).unwrap_err().to_string(),
        "name: missing"
    );
}
