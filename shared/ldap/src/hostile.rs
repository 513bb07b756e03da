//! What a hostile or broken directory server's bytes do to the connection's
//! decoder (the vendored ldap3's `decode_message`, hardened by
//! `shared/vendor/ldap3/src/hardening.rs`) and to dirsync's readers: an
//! error that names the problem, never a panic, a stack overflow or an
//! unbounded buffer. Inputs found by fuzzing (tests/fuzz) are kept here.

use bytes::BytesMut;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        let n = content.len().to_be_bytes();
        let skip = n.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (n.len() - skip) as u8);
        out.extend(&n[skip..]);
    }
    out.extend(content);
    out
}

fn message(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn id() -> Vec<u8> {
    tlv(0x02, &[2])
}

/// A SearchResultDone with `rc` and these extras.
fn done(extra: &[u8]) -> Vec<u8> {
    tlv(
        0x65,
        &[
            tlv(0x0a, &[0]),
            tlv(0x04, b""),
            tlv(0x04, b""),
            extra.to_vec(),
        ]
        .concat(),
    )
}

fn control(oid: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let mut parts = vec![tlv(0x04, oid)];
    if let Some(v) = value {
        parts.push(tlv(0x04, v));
    }
    tlv(0x30, &parts.concat())
}

/// Decodes every message of `bytes`; the error of the first bad one.
fn decode(bytes: &[u8]) -> Result<usize, String> {
    let mut buf = BytesMut::from(bytes);
    let mut n = 0;
    loop {
        match ldap3::decode_message(&mut buf) {
            Ok(Some(_)) => n += 1,
            Ok(None) => return Ok(n),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn well_formed_messages_decode() {
    let paged = control(
        b"1.2.840.113556.1.4.319",
        Some(&tlv(
            0x30,
            &[tlv(0x02, &[0]), tlv(0x04, b"cookie")].concat(),
        )),
    );
    let bytes = [
        message(&[id(), done(&[])]),
        message(&[id(), done(&[]), tlv(0xa0, &paged)]),
        message(&[id(), tlv(0x73, &tlv(0x04, b"ldap://dc2/DC=corp"))]),
    ]
    .concat();
    assert_eq!(decode(&bytes), Ok(3));
    // Cut short: nothing yet, no error.
    assert_eq!(decode(&bytes[..5]), Ok(0));
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // 83 KB of nested SEQUENCEs overflowed the stack of lber's recursive
    // parser before the depth check.
    let mut nested = Vec::new();
    for _ in 0..20_000 {
        nested = tlv(0x30, &nested);
    }
    let e = decode(&nested).expect_err("refused");
    assert!(e.contains("nests deeper"), "{e}");
    // Inside a message, and inside a control value read by dirsync.
    let e = decode(&message(&[
        id(),
        done(&[]),
        tlv(0xa0, &control(b"1.2.3", Some(&nested))),
    ]));
    assert!(e.is_ok(), "an unknown control's value is not parsed: {e:?}");
    assert!(crate::entry::parse_ber(&nested).is_none());
    assert!(crate::delta::parse_dirsync_response(&nested).is_none());
    assert!(crate::syncrepl::parse_sync_info(&nested).is_none());
}

#[test]
fn a_control_type_that_is_not_utf8_is_an_error() {
    // Found by the ldap_message fuzz target: upstream's parse_controls
    // panicked ("control type: FromUtf8Error").
    let bad = control(b"1.2.840.113556\xd2\xce\xd1", None);
    let e = decode(&message(&[id(), done(&[]), tlv(0xa0, &bad)])).expect_err("refused");
    assert!(e.contains("malformed") && e.contains("UTF-8"), "{e}");
}

#[test]
fn malformed_results_and_controls_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // An empty message, one without an operation, an ID that is not
        // an INTEGER.
        (tlv(0x30, &[]), "SEQUENCE of an ID"),
        (message(&[id()]), "SEQUENCE of an ID"),
        (message(&[tlv(0x04, b"x"), done(&[])]), "message ID"),
        // A result without its code, a code that is not ENUMERATED, a
        // message that is not UTF-8, a referral that is not a list.
        (message(&[id(), tlv(0x65, &[])]), "result"),
        (
            message(&[
                id(),
                tlv(
                    0x65,
                    &[tlv(0x04, &[0]), tlv(0x04, b""), tlv(0x04, b"")].concat(),
                ),
            ]),
            "result code",
        ),
        (
            message(&[
                id(),
                tlv(
                    0x65,
                    &[tlv(0x0a, &[0]), tlv(0x04, b""), tlv(0x04, b"\xff")].concat(),
                ),
            ]),
            "UTF-8",
        ),
        (message(&[id(), done(&tlv(0x83, b"x"))]), "referral"),
        // An unknown operation, an operation of the universal class.
        (
            message(&[id(), tlv(0x7a, &[])]),
            "unknown response operation 26",
        ),
        (message(&[id(), tlv(0x30, &[])]), "application class"),
        // A criticality that is not one byte, a paged results control
        // without a value, or with one that is not {INTEGER, cookie}.
        (
            message(&[
                id(),
                done(&[]),
                tlv(
                    0xa0,
                    &tlv(0x30, &[tlv(0x04, b"1.2.3"), tlv(0x01, &[])].concat()),
                ),
            ]),
            "criticality",
        ),
        (
            message(&[
                id(),
                done(&[]),
                tlv(0xa0, &control(b"1.2.840.113556.1.4.319", None)),
            ]),
            "paged results",
        ),
        (
            message(&[
                id(),
                done(&[]),
                tlv(
                    0xa0,
                    &control(b"1.2.840.113556.1.4.319", Some(&tlv(0x30, &[]))),
                ),
            ]),
            "paged results",
        ),
    ];
    for (bytes, what) in cases {
        let e = decode(&bytes).expect_err(what);
        assert!(e.contains("malformed") && e.contains(what), "{what}: {e}");
    }
}

#[test]
fn a_huge_declared_length_is_refused_before_it_is_buffered() {
    // 4 GiB declared: refused at the header, not waited for.
    let e = decode(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02]).expect_err("refused");
    assert!(e.contains("more than"), "{e}");
    let e = decode(&[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).expect_err("refused");
    assert!(e.contains("length"), "{e}");
    // An incomplete header is waited for.
    assert_eq!(decode(&[0x30, 0x84, 0x00]), Ok(0));
}
