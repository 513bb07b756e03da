//! A hostile or broken directory server, for the tests of what dirsync
//! does with one: plain LDAP on loopback, a generic LDAP directory under
//! `ou=people,dc=hostile,dc=test`, that answers the searches a sync makes
//! and misbehaves as its [`Behaviour`] says. It is not a stand-in for a
//! real directory (the suite syncs real Samba AD and OpenLDAP): it is the
//! fault a real directory does not offer to inject.
//!
//! What it answers: a bind (always accepted), the rootDSE, a content
//! synchronization request (refused: unavailableCriticalExtension), a read
//! of cn=Monitor (noSuchObject), and every other search with the
//! directory's entries as the behaviour shapes them, paged results
//! answered with an empty cookie.

use std::sync::{Arc, Mutex};

use ldap3::asn1::{PL, StructureTag, TagClass};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Root DN of the hostile directory.
pub const HOSTILE_ROOT: &str = "ou=people,dc=hostile,dc=test";

/// How the server answers the sync's search of the Root DN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The directory as it is: three users and a group of them.
    Good,
    /// Two entries, then half of the third, and the connection closed.
    TruncatedPage,
    /// A user whose DN is not UTF-8, and one whose display name is not.
    InvalidUtf8,
    /// A user with `mail` twice, and `MAIL` once more.
    DuplicateAttributes,
    /// A user with a display name of 1 MiB.
    OversizedValue,
    /// A message that says it is 300 MB long, then a trickle of bytes.
    OversizedMessage,
    /// A message of 20,000 nested SEQUENCEs.
    DeepNesting,
    /// The group with `members` member values (DNs of users that do not
    /// exist), besides the good directory.
    ManyMembers(usize),
    /// A SearchResultDone whose paged results control cannot be read.
    BadPagedControl,
}

/// A running hostile server; stops when dropped.
pub struct HostileServer {
    pub port: u16,
    behaviour: Arc<Mutex<Behaviour>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileServer {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let shared = behaviour.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let b = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, b).await;
                });
            }
        });
        Self {
            port,
            behaviour,
            task,
        }
    }

    /// Misbehaves another way from the next connection on.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

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

fn octets(v: &[u8]) -> Vec<u8> {
    tlv(0x04, v)
}

fn message(id: &[u8], op: Vec<u8>, controls: Option<Vec<u8>>) -> Vec<u8> {
    let mut parts = vec![tlv(0x02, id), op];
    if let Some(c) = controls {
        parts.push(tlv(0xa0, &c));
    }
    tlv(0x30, &parts.concat())
}

fn result(app: u8, rc: u8, text: &str) -> Vec<u8> {
    tlv(
        app,
        &[tlv(0x0a, &[rc]), octets(b""), octets(text.as_bytes())].concat(),
    )
}

/// A SearchResultEntry of `dn` with `attrs`.
fn entry(dn: &[u8], attrs: &[(&str, Vec<Vec<u8>>)]) -> Vec<u8> {
    let list: Vec<u8> = attrs
        .iter()
        .map(|(name, values)| {
            let set: Vec<u8> = values.iter().flat_map(|v| octets(v)).collect();
            tlv(0x30, &[octets(name.as_bytes()), tlv(0x31, &set)].concat())
        })
        .collect::<Vec<_>>()
        .concat();
    tlv(0x64, &[octets(dn), tlv(0x30, &list)].concat())
}

fn user(uid: &str, uuid: &str) -> Vec<u8> {
    let dn = format!("uid={uid},{HOSTILE_ROOT}");
    entry(
        dn.as_bytes(),
        &[
            ("objectClass", vec![b"inetOrgPerson".to_vec()]),
            ("entryUUID", vec![uuid.as_bytes().to_vec()]),
            ("uid", vec![uid.as_bytes().to_vec()]),
            ("cn", vec![uid.as_bytes().to_vec()]),
            ("displayName", vec![format!("User {uid}").into_bytes()]),
            ("mail", vec![format!("{uid}@hostile.test").into_bytes()]),
        ],
    )
}

const UUIDS: [&str; 4] = [
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",
    "00000000-0000-4000-8000-000000000004",
];

fn group(extra_members: usize) -> Vec<u8> {
    let mut members: Vec<Vec<u8>> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| format!("uid={u},{HOSTILE_ROOT}").into_bytes())
        .collect();
    members
        .extend((0..extra_members).map(|i| format!("uid=ghost{i:07},{HOSTILE_ROOT}").into_bytes()));
    entry(
        format!("cn=staff,{HOSTILE_ROOT}").as_bytes(),
        &[
            ("objectClass", vec![b"groupOfNames".to_vec()]),
            ("entryUUID", vec![UUIDS[3].as_bytes().to_vec()]),
            ("cn", vec![b"staff".to_vec()]),
            ("mail", vec![b"staff@hostile.test".to_vec()]),
            ("member", members),
        ],
    )
}

/// The entries of the good directory.
fn good(extra_members: usize) -> Vec<Vec<u8>> {
    vec![
        user("alice", UUIDS[0]),
        user("bob", UUIDS[1]),
        user("carol", UUIDS[2]),
        group(extra_members),
    ]
}

fn paged_done() -> Vec<u8> {
    let value = tlv(0x30, &[tlv(0x02, &[0]), octets(b"")].concat());
    tlv(
        0x30,
        &[octets(b"1.2.840.113556.1.4.319"), octets(&value)].concat(),
    )
}

/// One request read whole: (message ID bytes, operation).
async fn read_request(
    stream: &mut TcpStream,
) -> std::io::Result<Option<(Vec<u8>, StructureTag, Vec<String>)>> {
    let mut head = [0u8; 2];
    if stream.read_exact(&mut head).await.is_err() {
        return Ok(None);
    }
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let mut n = vec![0u8; usize::from(head[1] & 0x7f)];
        stream.read_exact(&mut n).await?;
        n.iter().fold(0usize, |l, b| (l << 8) | usize::from(*b))
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let whole = [head.to_vec(), len_bytes(head[1], len), body].concat();
    let (_, tag) = ldap3::asn1::parse_tag(&whole)
        .map_err(|_| std::io::Error::other("a request that is not BER"))?;
    let PL::C(mut parts) = tag.payload else {
        return Err(std::io::Error::other("a request that is not a SEQUENCE"));
    };
    let mut oids = Vec::new();
    if parts.len() == 3
        && let Some(controls) = parts.pop()
        && let PL::C(list) = controls.payload
    {
        for c in list {
            if let PL::C(fields) = c.payload
                && let Some(PL::P(oid)) = fields.into_iter().next().map(|f| f.payload)
            {
                oids.push(String::from_utf8_lossy(&oid).into_owned());
            }
        }
    }
    let op = parts
        .pop()
        .ok_or_else(|| std::io::Error::other("no operation"))?;
    let id = match parts.pop().map(|p| p.payload) {
        Some(PL::P(id)) => id,
        _ => return Err(std::io::Error::other("no message ID")),
    };
    Ok(Some((id, op, oids)))
}

fn len_bytes(first: u8, len: usize) -> Vec<u8> {
    if first < 0x80 {
        Vec::new()
    } else {
        let n = usize::from(first & 0x7f);
        len.to_be_bytes()[std::mem::size_of::<usize>() - n..].to_vec()
    }
}

/// The base DN of a SearchRequest.
fn search_base(op: &StructureTag) -> String {
    match &op.payload {
        PL::C(parts) => match parts.first().map(|p| &p.payload) {
            Some(PL::P(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        },
        PL::P(_) => String::new(),
    }
}

async fn serve(mut stream: TcpStream, behaviour: Arc<Mutex<Behaviour>>) -> std::io::Result<()> {
    let behaviour = *behaviour.lock().unwrap();
    while let Some((id, op, oids)) = read_request(&mut stream).await? {
        if op.class != TagClass::Application {
            return Ok(());
        }
        let out: Vec<u8> = match op.id {
            0 => message(&id, result(0x61, 0, ""), None),
            2 => return Ok(()),
            3 => {
                let base = search_base(&op);
                let done = |rc: u8, text: &str| message(&id, result(0x65, rc, text), None);
                if oids.iter().any(|o| o == "1.3.6.1.4.1.4203.1.9.1.1") {
                    done(12, "no content synchronization here")
                } else if base.is_empty() {
                    [
                        message(
                            &id,
                            entry(
                                b"",
                                &[("namingContexts", vec![b"dc=hostile,dc=test".to_vec()])],
                            ),
                            None,
                        ),
                        done(0, ""),
                    ]
                    .concat()
                } else if !base.eq_ignore_ascii_case(HOSTILE_ROOT) {
                    done(32, "no such object")
                } else {
                    let finish = message(&id, result(0x65, 0, ""), Some(paged_done()));
                    let entries = |list: Vec<Vec<u8>>| -> Vec<u8> {
                        list.into_iter()
                            .map(|e| message(&id, e, None))
                            .collect::<Vec<_>>()
                            .concat()
                    };
                    match behaviour {
                        Behaviour::Good => [entries(good(0)), finish].concat(),
                        Behaviour::ManyMembers(n) => [entries(good(n)), finish].concat(),
                        Behaviour::TruncatedPage => {
                            let all = entries(good(0));
                            let cut = message(&id, user("alice", UUIDS[0]), None).len()
                                + message(&id, user("bob", UUIDS[1]), None).len()
                                + message(&id, user("carol", UUIDS[2]), None).len() / 2;
                            stream.write_all(&all[..cut]).await?;
                            stream.flush().await?;
                            return Ok(());
                        }
                        Behaviour::InvalidUtf8 => {
                            let mut bad_name = user("bob", UUIDS[1]);
                            let at = bad_name.windows(8).position(|w| w == b"User bob").unwrap();
                            bad_name[at + 5] = 0xff;
                            let bad_dn = entry(
                                b"uid=dave\xc3\x28,ou=people,dc=hostile,dc=test",
                                &[
                                    ("objectClass", vec![b"inetOrgPerson".to_vec()]),
                                    (
                                        "entryUUID",
                                        vec![b"00000000-0000-4000-8000-000000000005".to_vec()],
                                    ),
                                ],
                            );
                            [
                                entries(vec![
                                    user("alice", UUIDS[0]),
                                    bad_name,
                                    user("carol", UUIDS[2]),
                                    group(0),
                                    bad_dn,
                                ]),
                                finish,
                            ]
                            .concat()
                        }
                        Behaviour::DuplicateAttributes => {
                            let twice = entry(
                                format!("uid=bob,{HOSTILE_ROOT}").as_bytes(),
                                &[
                                    ("objectClass", vec![b"inetOrgPerson".to_vec()]),
                                    ("entryUUID", vec![UUIDS[1].as_bytes().to_vec()]),
                                    ("mail", vec![b"bob@hostile.test".to_vec()]),
                                    ("displayName", vec![b"User bob".to_vec()]),
                                    ("mail", vec![b"robert@hostile.test".to_vec()]),
                                    ("MAIL", vec![b"bobby@hostile.test".to_vec()]),
                                    ("cn", vec![b"bob".to_vec()]),
                                ],
                            );
                            [
                                entries(vec![
                                    user("alice", UUIDS[0]),
                                    twice,
                                    user("carol", UUIDS[2]),
                                    group(0),
                                ]),
                                finish,
                            ]
                            .concat()
                        }
                        Behaviour::OversizedValue => {
                            let huge = entry(
                                format!("uid=bob,{HOSTILE_ROOT}").as_bytes(),
                                &[
                                    ("objectClass", vec![b"inetOrgPerson".to_vec()]),
                                    ("entryUUID", vec![UUIDS[1].as_bytes().to_vec()]),
                                    ("mail", vec![b"bob@hostile.test".to_vec()]),
                                    ("displayName", vec![vec![b'B'; 1 << 20]]),
                                ],
                            );
                            [
                                entries(vec![
                                    user("alice", UUIDS[0]),
                                    huge,
                                    user("carol", UUIDS[2]),
                                    group(0),
                                ]),
                                finish,
                            ]
                            .concat()
                        }
                        Behaviour::OversizedMessage => {
                            // 300 MB declared; then bytes, slowly, until
                            // the client hangs up.
                            stream
                                .write_all(&[0x30, 0x84, 0x11, 0xe1, 0xa3, 0x00, 0x02, 0x01])
                                .await?;
                            for _ in 0..600 {
                                if stream.write_all(&[0u8; 1024]).await.is_err() {
                                    return Ok(());
                                }
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            }
                            return Ok(());
                        }
                        Behaviour::DeepNesting => {
                            let mut nested = Vec::new();
                            for _ in 0..20_000 {
                                nested = tlv(0x30, &nested);
                            }
                            [entries(vec![user("alice", UUIDS[0])]), nested].concat()
                        }
                        Behaviour::BadPagedControl => {
                            let bad = tlv(
                                0x30,
                                &[octets(b"1.2.840.113556.1.4.319"), octets(b"\x30\x00")].concat(),
                            );
                            [
                                entries(good(0)),
                                message(&id, result(0x65, 0, ""), Some(bad)),
                            ]
                            .concat()
                        }
                    }
                }
            }
            // Abandon and anything else: no answer.
            _ => continue,
        };
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
    Ok(())
}
