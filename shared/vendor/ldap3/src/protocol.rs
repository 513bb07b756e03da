use std::io;
#[cfg(feature = "gssapi")]
use std::sync::RwLock;
#[cfg(feature = "gssapi")]
use std::sync::{Arc, Mutex};

use crate::RequestId;
use crate::hardening;
use crate::controls::{Control, RawControl};
use crate::controls_impl::{build_tag, parse_controls};
use crate::search::SearchItem;

use lber::common::TagClass;
use lber::parse::parse_uint;
use lber::structure::{PL, StructureTag};
use lber::structures::{ASNTag, Integer, Sequence, Tag};
use lber::universal::Types;
use lber::write;

use bytes::{Buf, BytesMut};
#[cfg(feature = "gssapi")]
use cross_krb5::{ClientCtx, K5Ctx};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Decoder, Encoder};

pub(crate) struct LdapCodec {
    #[cfg(feature = "gssapi")]
    pub(crate) has_decoded_data: bool,
    #[cfg(feature = "gssapi")]
    pub(crate) sasl_param: Arc<RwLock<(bool, u32)>>, // sasl_wrap, sasl_max_send
    #[cfg(feature = "gssapi")]
    pub(crate) client_ctx: Arc<Mutex<Option<ClientCtx>>>,
}

pub(crate) type MaybeControls = Option<Vec<RawControl>>;
pub(crate) type ItemSender = mpsc::UnboundedSender<(SearchItem, Vec<Control>)>;
pub(crate) type ResultSender = oneshot::Sender<(Tag, Vec<Control>)>;

#[derive(Debug)]
pub enum MiscSender {
    #[cfg(any(feature = "tls-native", feature = "tls-rustls"))]
    Cert(oneshot::Sender<Option<Vec<u8>>>),
}

#[derive(Debug)]
pub enum LdapOp {
    Single,
    Search(ItemSender),
    Abandon(RequestId),
    Unbind,
}

/// The tag byte, header length and content length of the BER element at
/// the start of `b`, for a one-byte tag and a definite length of at most
/// four bytes (what LDAP sends, RFC 4511 5.1); `None` for anything else or
/// a header not all in `b`.
fn ber_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let (&tag, rest) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return Some((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 || rest.len() < n {
        return None;
    }
    let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | usize::from(b));
    Some((tag, 2 + n, len))
}

/// What the fast path of [`decode_inner`] made of the buffer.
enum FastPath {
    /// A SearchResultEntry without controls.
    Entry(RequestId, Tag),
    /// A message not all in the buffer yet.
    Incomplete,
    /// Another message, or one the fast path does not read: parse it whole.
    Other,
}

/// A SearchResultEntry message without controls, its entry kept as the
/// bytes it arrived as: `[APPLICATION 4]` with a primitive payload, the
/// contents of the entry's SEQUENCE. `SearchEntry::construct` parses them
/// when asked; a reader of its own can take the values straight from the
/// bytes instead of from a tree of tags, one allocation per value, that
/// the whole parse would build.
fn decode_raw_entry(buf: &mut BytesMut) -> FastPath {
    let Some((0x30, head, len)) = ber_header(buf) else {
        return FastPath::Other;
    };
    if buf.len() < head + len {
        return FastPath::Incomplete;
    }
    let message = &buf[head..head + len];
    let Some((0x02, id_head, id_len)) = ber_header(message) else {
        return FastPath::Other;
    };
    if id_len == 0 || id_len > 4 || message.len() < id_head + id_len {
        return FastPath::Other;
    }
    let id = message[id_head..id_head + id_len]
        .iter()
        .fold(0u64, |n, &b| (n << 8) | u64::from(b)) as RequestId;
    let op = &message[id_head + id_len..];
    // [APPLICATION 4], constructed, and nothing after it (no controls).
    match ber_header(op) {
        Some((0x64, op_head, op_len)) if op.len() == op_head + op_len => {
            let contents = op[op_head..].to_vec();
            buf.advance(head + len);
            FastPath::Entry(
                id,
                Tag::StructureTag(StructureTag {
                    class: TagClass::Application,
                    id: 4,
                    payload: PL::P(contents),
                }),
            )
        }
        _ => FastPath::Other,
    }
}

#[allow(clippy::type_complexity)]
pub(crate) fn decode_inner(buf: &mut BytesMut) -> Result<Option<(RequestId, (Tag, Vec<Control>))>, io::Error> {
    // dirsync: a message is bounded in size and depth before it is
    // buffered whole or parsed (src/hardening.rs).
    let Some(extent) = hardening::message_extent(buf)? else {
        return Ok(None);
    };
    if buf.len() < extent {
        return Ok(None);
    }
    match decode_raw_entry(buf) {
        FastPath::Entry(id, tag) => return Ok(Some((id, (tag, vec![])))),
        FastPath::Incomplete => return Ok(None),
        FastPath::Other => {}
    }
    if !hardening::ber_within_depth(&buf[..extent], hardening::MAX_DEPTH) {
        return Err(hardening::malformed(format!(
            "it nests deeper than {} levels, or its lengths do not add up",
            hardening::MAX_DEPTH
        )));
    }
    let mut parser = lber::Parser::new();
    // The parsed tag owns its bytes: it is moved out, and the buffer
    // advanced past it, without copying the tree.
    let (consumed, tag) = match parser.parse(buf) {
        Err(e) if e.is_incomplete() => return Ok(None),
        Err(_e) => return Err(hardening::malformed("it is not BER")),
        Ok((i, tag)) => (buf.len() - i.len(), tag),
    };
    buf.advance(consumed);
    let mut tags = match tag
        .match_id(Types::Sequence as u64)
        .and_then(|t| t.expect_constructed())
    {
        Some(tags) if (2..=3).contains(&tags.len()) => tags,
        _ => return Err(hardening::malformed("it is not a SEQUENCE of an ID, an operation and controls")),
    };
    let mut maybe_controls = tags.pop().ok_or_else(|| hardening::malformed("it is empty"))?;
    let has_controls = match maybe_controls {
        StructureTag {
            id,
            class,
            ref payload,
        } if class == TagClass::Context && id == 0 => match *payload {
            PL::C(_) => true,
            PL::P(_) => return Err(hardening::malformed("its controls are not a SEQUENCE")),
        },
        StructureTag { id, class, .. } if class == TagClass::Context && id == 10 => {
            // Active Directory bug workaround
            //
            // AD incorrectly encodes Notice of Disconnection messages. The OID of the
            // Unsolicited Notification should be part of the ExtendedResponse sequence
            // but AD puts it outside, where the optional controls belong. This confuses
            // our parser, which doesn't expect the extra sequence element at the end
            // and crashes. This match arm thus ignores the element.
            maybe_controls = tags.pop().ok_or_else(|| hardening::malformed("it has no operation"))?;
            false
        }
        _ => false,
    };
    let (protoop, controls) = if has_controls {
        (
            tags.pop().ok_or_else(|| hardening::malformed("it has no operation"))?,
            Some(maybe_controls),
        )
    } else {
        (maybe_controls, None)
    };
    let id_tag = tags.pop().ok_or_else(|| hardening::malformed("it has no message ID"))?;
    if !tags.is_empty() {
        return Err(hardening::malformed("it has more elements than a message has"));
    }
    hardening::check_message_id(&id_tag)?;
    hardening::check_op(&protoop)?;
    if let Some(c) = &controls {
        hardening::check_controls(c)?;
    }
    let controls = match controls {
        Some(controls) => parse_controls(controls),
        None => vec![],
    };
    let msgid = match parse_uint(id_tag.expect_primitive().unwrap_or_default().as_slice()) {
        Ok((_, id)) => id as i32,
        _ => return Err(hardening::malformed("its message ID is not an INTEGER")),
    };
    Ok(Some((msgid, (Tag::StructureTag(protoop), controls))))
}

impl Decoder for LdapCodec {
    type Item = (RequestId, (Tag, Vec<Control>));
    type Error = io::Error;

    #[cfg(not(feature = "gssapi"))]
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        decode_inner(buf)
    }

    #[cfg(feature = "gssapi")]
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        const U32_SIZE: usize = std::mem::size_of::<u32>();

        let sasl_wrap = { self.sasl_param.read().expect("sasl param").0 };
        if !sasl_wrap || buf.is_empty() {
            return decode_inner(buf);
        }
        if self.has_decoded_data {
            let res = decode_inner(buf);
            if res.is_ok() && buf.is_empty() {
                self.has_decoded_data = false;
            }
            return res;
        }
        if buf.len() < U32_SIZE {
            return Err(io::Error::new(io::ErrorKind::Other, "invalid SASL buffer"));
        }
        let sasl_len = u32::from_be_bytes(buf[0..U32_SIZE].try_into().unwrap());
        if buf.len() - U32_SIZE < sasl_len as usize {
            return Ok(None);
        }
        buf.advance(U32_SIZE);
        let client_opt = &mut *self.client_ctx.lock().expect("client ctx lock");
        let client_ctx = client_opt.as_mut().expect("client Option mut ref");
        let mut decoded = client_ctx.unwrap_iov(sasl_len as usize, buf).map_err(|e| {
            io::Error::new(io::ErrorKind::Other, format!("gss_unwrap error: {:#}", e))
        })?;
        let res = decode_inner(&mut decoded);
        if res.is_ok() && !decoded.is_empty() && buf.is_empty() {
            buf.extend(decoded);
            self.has_decoded_data = true;
        }
        res
    }
}

#[cfg(not(feature = "gssapi"))]
#[inline]
fn maybe_wrap(
    _codec: &mut LdapCodec,
    outstruct: StructureTag,
    into: &mut BytesMut,
) -> io::Result<()> {
    write::encode_into(into, outstruct)?;
    Ok(())
}

#[cfg(feature = "gssapi")]
fn maybe_wrap(
    codec: &mut LdapCodec,
    outstruct: StructureTag,
    into: &mut BytesMut,
) -> io::Result<()> {
    let mut out_buf = BytesMut::new();
    write::encode_into(&mut out_buf, outstruct)?;
    let (sasl_wrap, sasl_send_max) = {
        let sasl_param = codec.sasl_param.read().expect("sasl param");
        (sasl_param.0, sasl_param.1)
    };
    if sasl_wrap {
        let client_opt = &mut *codec.client_ctx.lock().expect("client_ctx lock");
        let client_ctx = client_opt.as_mut().expect("client Option mut ref");
        if sasl_send_max > 0 && out_buf.len() > sasl_send_max as usize {
            return Err(io::Error::new(
                io::ErrorKind::Other,
                format!(
                    "buffer too large for GSSAPI: {} > {}",
                    out_buf.len(),
                    sasl_send_max
                ),
            ));
        }
        let sasl_buf = client_ctx.wrap(true, &out_buf).map_err(|e| {
            io::Error::new(io::ErrorKind::Other, format!("gss_wrap error: {:#}", e))
        })?;
        let sasl_len = (sasl_buf.len() as u32).to_be_bytes();
        into.extend(&sasl_len);
        into.extend(&*sasl_buf);
    } else {
        into.extend(&out_buf);
    }
    Ok(())
}

impl Encoder<(RequestId, Tag, MaybeControls)> for LdapCodec {
    type Error = io::Error;

    fn encode(
        &mut self,
        msg: (RequestId, Tag, MaybeControls),
        into: &mut BytesMut,
    ) -> io::Result<()> {
        let (id, tag, controls) = msg;
        let outstruct = {
            let mut msg = vec![
                Tag::Integer(Integer {
                    inner: id as i64,
                    ..Default::default()
                }),
                tag,
            ];
            if let Some(controls) = controls {
                msg.push(Tag::StructureTag(StructureTag {
                    id: 0,
                    class: TagClass::Context,
                    payload: PL::C(controls.into_iter().map(build_tag).collect()),
                }));
            }
            Tag::Sequence(Sequence {
                inner: msg,
                ..Default::default()
            })
            .into_structure()
        };
        maybe_wrap(self, outstruct, into)?;
        Ok(())
    }
}
