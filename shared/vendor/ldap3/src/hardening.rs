//! dirsync's addition: what a server's message must be before the rest of
//! ldap3 reads it. Upstream's readers assume a well-formed server and
//! `expect`/`panic!` otherwise (`LdapResultExt::from`, `parse_controls`,
//! `parse_refs`, `PagedResults::parse`, the connection's dispatch), and
//! lber's parser recurses once per nesting level, so a hostile or broken
//! server could stop the process: a panic in the caller's task, or a
//! stack overflow (an 83 KB message of nested SEQUENCEs did it). Every
//! message is checked here once, in the decoder, and a bad one is an
//! `InvalidData` error naming what is wrong: the connection fails, the
//! operation gets an error, nothing panics.

use std::io;

use lber::common::TagClass;
use lber::parse::parse_uint;
use lber::structure::{PL, StructureTag};
use lber::universal::Types;

use crate::controls_impl::paged_results::PAGED_RESULTS_OID;

/// Nesting levels a message may have. LDAP responses nest about six deep
/// (message, entry, attribute list, attribute, value set, value); lber's
/// parser takes one stack frame per level.
pub const MAX_DEPTH: usize = 32;

/// The longest message accepted: an entry of a million 200-byte member
/// values fits. A longer one is refused before it is buffered whole.
pub const MAX_MESSAGE: usize = 256 << 20;

pub(crate) fn malformed(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent a malformed LDAP message: {what}"),
    )
}

/// Whether the BER elements in `bytes` nest at most `max` levels deep,
/// each length inside its parent. Iterative: it holds the end of each
/// open constructed element, never recurses. Lengths use any definite
/// form; an indefinite length or a multi-byte tag is refused.
pub fn ber_within_depth(bytes: &[u8], max: usize) -> bool {
    let mut ends: Vec<usize> = Vec::new();
    let mut at = 0usize;
    let mut end = bytes.len();
    loop {
        if at == end {
            // The element being read ends here: back to its parent.
            match ends.pop() {
                Some(outer) => {
                    end = outer;
                    continue;
                }
                None => return true,
            }
        }
        let Some((constructed, head, len)) = header(&bytes[at..end]) else {
            return false;
        };
        let Some(content_end) = at.checked_add(head).and_then(|h| h.checked_add(len)) else {
            return false;
        };
        if content_end > end {
            return false;
        }
        if constructed {
            if ends.len() + 1 >= max {
                return false;
            }
            ends.push(end);
            at += head;
            end = content_end;
        } else {
            at = content_end;
        }
    }
}

/// The length of the message at the start of `buf`, header included;
/// `None` while its header is incomplete. A message whose length cannot be
/// read or is over [`MAX_MESSAGE`] is an error before it is buffered.
pub(crate) fn message_extent(buf: &[u8]) -> io::Result<Option<usize>> {
    match buf {
        [] | [_] => return Ok(None),
        [_, first, rest @ ..] if *first > 0x80 && rest.len() < usize::from(first & 0x7f) => {
            if usize::from(first & 0x7f) > std::mem::size_of::<usize>() {
                return Err(malformed("its length does not fit in memory"));
            }
            return Ok(None);
        }
        _ => {}
    }
    let (_, head, len) =
        header(buf).ok_or_else(|| malformed("its header is not a definite BER length"))?;
    if len > MAX_MESSAGE {
        return Err(malformed(format!(
            "a message of {len} bytes, more than the {MAX_MESSAGE} accepted"
        )));
    }
    Ok(Some(head + len))
}

/// (constructed, header length, content length) of the element at the
/// start of `b`.
fn header(b: &[u8]) -> Option<(bool, usize, usize)> {
    let (&tag, rest) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return Some((tag & 0x20 != 0, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > std::mem::size_of::<usize>() || rest.len() < n {
        return None;
    }
    let len = rest[..n].iter().try_fold(0usize, |l, &b| {
        l.checked_mul(256).map(|l| l | usize::from(b))
    })?;
    Some((tag & 0x20 != 0, 2 + n, len))
}

fn primitive(t: &StructureTag) -> Option<&[u8]> {
    match &t.payload {
        PL::P(b) => Some(b),
        PL::C(_) => None,
    }
}

fn constructed(t: &StructureTag) -> Option<&[StructureTag]> {
    match &t.payload {
        PL::C(v) => Some(v),
        PL::P(_) => None,
    }
}

fn text(t: &StructureTag) -> Option<&str> {
    primitive(t).and_then(|b| std::str::from_utf8(b).ok())
}

fn is_universal(t: &StructureTag, ty: Types) -> bool {
    t.class == TagClass::Universal && t.id == ty as u64
}

/// The message ID: a universal INTEGER that `parse_uint` reads.
pub(crate) fn check_message_id(t: &StructureTag) -> io::Result<()> {
    primitive(t)
        .filter(|_| is_universal(t, Types::Integer))
        .filter(|b| !b.is_empty() && b.len() <= 4 && parse_uint(b).is_ok())
        .map(|_| ())
        .ok_or_else(|| malformed("its message ID is not an INTEGER"))
}

/// The controls, as `parse_controls` reads them: each a SEQUENCE of an
/// OID (UTF-8), an optional one-byte BOOLEAN and an optional value; a
/// paged results value as `PagedResults::parse` reads it.
pub(crate) fn check_controls(t: &StructureTag) -> io::Result<()> {
    let list = constructed(t).ok_or_else(|| malformed("its controls are not a SEQUENCE"))?;
    for control in list {
        let parts = constructed(control).ok_or_else(|| malformed("a control is not a SEQUENCE"))?;
        let mut parts = parts.iter();
        let oid = parts
            .next()
            .and_then(text)
            .ok_or_else(|| malformed("a control has no UTF-8 type"))?;
        let mut value = None;
        match parts.next() {
            None => {}
            Some(c) if c.id == Types::Boolean as u64 => {
                if primitive(c).is_none_or(|b| b.len() != 1) {
                    return Err(malformed(format!(
                        "control {oid}: its criticality is not a BOOLEAN"
                    )));
                }
                value = parts.next();
            }
            Some(c) if c.id == Types::OctetString as u64 => value = Some(c),
            Some(_) => return Err(malformed(format!("control {oid}: an unknown element"))),
        }
        if parts.next().is_some() {
            return Err(malformed(format!(
                "control {oid}: more elements than a control has"
            )));
        }
        let value = match value {
            Some(v) => Some(primitive(v).ok_or_else(|| {
                malformed(format!("control {oid}: its value is not an OCTET STRING"))
            })?),
            None => None,
        };
        if oid == PAGED_RESULTS_OID {
            let ok = value.is_some_and(|v| {
                ber_within_depth(v, MAX_DEPTH)
                    && lber::parse::parse_tag(v).is_ok_and(|(_, tag)| {
                        constructed(&tag).is_some_and(|parts| {
                            matches!(parts, [size, cookie]
                                if is_universal(size, Types::Integer)
                                    && primitive(size).is_some_and(|b| parse_uint(b).is_ok())
                                    && primitive(cookie).is_some())
                        })
                    })
            });
            if !ok {
                return Err(malformed("its paged results control cannot be read"));
            }
        }
    }
    Ok(())
}

/// The protocol operation, as the connection dispatches it and the
/// readers of results and referrals read it.
pub(crate) fn check_op(op: &StructureTag) -> io::Result<()> {
    if op.class != TagClass::Application {
        return Err(malformed("its operation is not of the application class"));
    }
    match op.id {
        // SearchResultEntry, IntermediateResponse: read by their callers,
        // which handle any shape (dirsync's entry reader).
        4 | 25 => Ok(()),
        // SearchResultReference: URIs.
        19 => check_refs(op, "search result reference"),
        // Bind, SearchResultDone, Modify, Add, Del, ModifyDN, Compare,
        // Extended responses: an LDAPResult and its extras.
        1 | 5 | 7 | 9 | 11 | 13 | 15 | 24 => check_result(op),
        id => Err(malformed(format!("unknown response operation {id}"))),
    }
}

fn check_refs(t: &StructureTag, what: &str) -> io::Result<()> {
    constructed(t)
        .filter(|uris| uris.iter().all(|u| text(u).is_some()))
        .map(|_| ())
        .ok_or_else(|| malformed(format!("a {what} is not a list of UTF-8 URIs")))
}

fn check_result(op: &StructureTag) -> io::Result<()> {
    let parts = constructed(op).ok_or_else(|| malformed("its result is not a SEQUENCE"))?;
    let [code, matched, message, extras @ ..] = parts else {
        return Err(malformed(
            "its result lacks a result code, matched DN or message",
        ));
    };
    if !is_universal(code, Types::Enumerated)
        || !primitive(code).is_some_and(|b| !b.is_empty() && b.len() <= 4 && parse_uint(b).is_ok())
    {
        return Err(malformed("its result code is not an ENUMERATED"));
    }
    if text(matched).is_none() || text(message).is_none() {
        return Err(malformed(
            "its matched DN or diagnostic message is not UTF-8 text",
        ));
    }
    for extra in extras {
        let ok = match extra.id {
            3 => return check_refs(extra, "referral"),
            7 | 11 => primitive(extra).is_some(),
            10 => text(extra).is_some(),
            _ => true,
        };
        if !ok {
            return Err(malformed(format!(
                "its result's element [{}] cannot be read",
                extra.id
            )));
        }
    }
    Ok(())
}

// Tested by dirsync-ldap (shared/ldap/src/hostile.rs): this crate is not a
// workspace member, so its own tests would not run with the suite's.
