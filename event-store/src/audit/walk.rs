//! Following every stream's chain event by event, in whatever order the events come (the
//! database gives stream order, an export commit order): each event must be intact (its content
//! hashes to its hash), come next in its stream and chain to its predecessor's hash, and a
//! signed head must still hold the hash it was signed with. The database's check, the offline
//! export check and the checkpoint worker all walk this way.
use std::collections::{BTreeMap, HashMap};

use super::chain::Hash;
use super::checkpoint::{Head, Heads, StreamKey};

/// One event as the walk sees it.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub global_position: i64,
    pub chain_version: i16,
    /// The predecessor's hash this event's hash was computed over (none for a first event).
    pub previous: Option<Hash>,
    pub hash: Hash,
    /// Whether the content, chained to `previous`, hashes to `hash`.
    pub intact: bool,
}

/// The first event found wrong, by global position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    /// None for an event that is not there at all.
    pub global_position: Option<i64>,
    pub problem: ChainProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainProblem {
    /// The stored hash does not match the event's content and its predecessor's hash.
    Altered,
    /// One or more events before this one are missing from the stream.
    Missing { expected_sequence: i64 },
    /// Events a signed checkpoint covers are gone from the stream's end (or the whole stream).
    Removed { signed_sequence: i64 },
    /// A signed head no longer holds its signed hash: the stream was rewritten and re-hashed at
    /// or before it, after it was signed.
    Rewritten,
    /// The hash the event names as its predecessor's is not its predecessor's.
    Relinked,
    /// Hashed under an older chain version than its predecessor.
    Downgraded,
    /// The same event twice.
    Duplicate,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let event = format!(
            "event {}/{}#{}",
            self.aggregate_type, self.aggregate_id, self.sequence
        );
        let at = match self.global_position {
            Some(position) => format!("{event} (global position {position})"),
            None => event.clone(),
        };
        match self.problem {
            ChainProblem::Altered => write!(f, "{at} was altered: its hash does not match"),
            ChainProblem::Missing { expected_sequence } => write!(
                f,
                "event {}/{}#{expected_sequence} is missing (next present: #{}, global position {})",
                self.aggregate_type,
                self.aggregate_id,
                self.sequence,
                self.global_position.unwrap_or_default()
            ),
            ChainProblem::Removed { signed_sequence } => write!(
                f,
                "{event} is missing: the signed checkpoint covers the stream up to #{signed_sequence}"
            ),
            ChainProblem::Rewritten => write!(
                f,
                "{at} does not match the signed checkpoint: the stream was rewritten at or before \
                 this event after it was signed"
            ),
            ChainProblem::Relinked => write!(f, "{at} does not chain to its predecessor's hash"),
            ChainProblem::Downgraded => write!(
                f,
                "{at} is hashed under an older chain version than the event before it"
            ),
            ChainProblem::Duplicate => write!(f, "{at} appears twice"),
        }
    }
}

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub events: i64,
    /// Events at or below a signed head (the rest came after the checkpoint).
    pub covered: i64,
    pub first_broken: Option<BrokenLink>,
    pub problems: u64,
}

impl Findings {
    fn found(&mut self, broken: BrokenLink) {
        self.problems += 1;
        let key = |b: &BrokenLink| (b.global_position.unwrap_or(i64::MAX), b.sequence);
        if self
            .first_broken
            .as_ref()
            .is_none_or(|first| key(&broken) < key(first))
        {
            self.first_broken = Some(broken);
        }
    }
}

/// Where streams start: from their first event, checking the signed heads on the way (a
/// verification), or right after the signed heads (the next checkpoint's new events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Checking,
    Extending,
}

pub struct Walk {
    signed: Heads,
    mode: Mode,
    streams: HashMap<StreamKey, Stream>,
    findings: Findings,
}

struct Stream {
    next: i64,
    last: Option<Hash>,
    version: i16,
    /// Events that came before their predecessor.
    early: BTreeMap<i64, Early>,
}

#[derive(Clone, Copy)]
struct Early {
    global_position: i64,
    chain_version: i16,
    previous: Option<Hash>,
    hash: Hash,
    intact: bool,
}

impl Walk {
    /// Every stream from its first event, which must pass through `signed`.
    pub fn checking(signed: Heads) -> Self {
        Self::new(signed, Mode::Checking)
    }

    /// Streams continue right after `signed`.
    pub fn extending(signed: Heads) -> Self {
        Self::new(signed, Mode::Extending)
    }

    fn new(signed: Heads, mode: Mode) -> Self {
        Self {
            signed,
            mode,
            streams: HashMap::new(),
            findings: Findings::default(),
        }
    }

    pub fn push(&mut self, link: Link<'_>) {
        self.findings.events += 1;
        let key = (link.aggregate_type.to_owned(), link.aggregate_id.to_owned());
        let start = match (self.mode, self.signed.get(&key)) {
            (Mode::Extending, Some(head)) => (head.sequence + 1, Some(head.hash)),
            _ => (1, None),
        };
        let stream = self.streams.entry(key).or_insert_with(|| Stream {
            next: start.0,
            last: start.1,
            version: 0,
            early: BTreeMap::new(),
        });
        let early = Early {
            global_position: link.global_position,
            chain_version: link.chain_version,
            previous: link.previous,
            hash: link.hash,
            intact: link.intact,
        };
        let key = (link.aggregate_type, link.aggregate_id);
        let out_of_place = match link.sequence.cmp(&stream.next) {
            std::cmp::Ordering::Less => Some(match self.mode {
                Mode::Checking => ChainProblem::Duplicate,
                Mode::Extending => ChainProblem::Rewritten,
            }),
            std::cmp::Ordering::Greater => stream
                .early
                .insert(link.sequence, early)
                .map(|_| ChainProblem::Duplicate),
            std::cmp::Ordering::Equal => {
                let mut accepting = Some(early);
                while let Some(event) = accepting {
                    self.accept(key, event);
                    let stream = self.stream(key);
                    accepting = stream.early.remove(&stream.next);
                }
                None
            }
        };
        if let Some(problem) = out_of_place {
            self.findings.found(broken(
                key,
                link.sequence,
                Some(link.global_position),
                problem,
            ));
        }
    }

    fn stream(&mut self, (aggregate_type, aggregate_id): (&str, &str)) -> &mut Stream {
        self.streams
            .get_mut(&(aggregate_type.to_owned(), aggregate_id.to_owned()))
            .expect("a stream is entered before its events are accepted")
    }

    /// `event` is its stream's next one.
    fn accept(&mut self, key: (&str, &str), event: Early) {
        let signed = self.signed_head(key);
        let mode = self.mode;
        let stream = self.stream(key);
        let sequence = stream.next;
        let mut problems = Vec::new();
        if !event.intact {
            problems.push(ChainProblem::Altered);
        } else if event.previous != stream.last {
            problems.push(ChainProblem::Relinked);
        }
        if event.chain_version < stream.version {
            problems.push(ChainProblem::Downgraded);
        }
        let mut covered = false;
        if let (Mode::Checking, Some(head)) = (mode, signed) {
            covered = sequence <= head.sequence;
            if sequence == head.sequence && event.hash != head.hash {
                problems.push(ChainProblem::Rewritten);
            }
        }
        stream.last = Some(event.hash);
        stream.next += 1;
        stream.version = stream.version.max(event.chain_version);
        self.findings.covered += i64::from(covered);
        for problem in problems {
            let position = Some(event.global_position);
            self.findings
                .found(broken(key, sequence, position, problem));
        }
    }

    fn signed_head(&self, (aggregate_type, aggregate_id): (&str, &str)) -> Option<Head> {
        self.signed
            .get(&(aggregate_type.to_owned(), aggregate_id.to_owned()))
            .copied()
    }

    /// What was found, and every stream's head now: the signed heads moved on by the events
    /// walked (the heads a next checkpoint signs, when extending).
    pub fn finish(mut self) -> (Findings, Heads) {
        for ((aggregate_type, aggregate_id), stream) in &self.streams {
            let key = (aggregate_type.as_str(), aggregate_id.as_str());
            if let Some((&sequence, early)) = stream.early.first_key_value() {
                let expected_sequence = stream.next;
                let problem = ChainProblem::Missing { expected_sequence };
                let position = Some(early.global_position);
                self.findings
                    .found(broken(key, sequence, position, problem));
            }
        }
        if self.mode == Mode::Checking {
            for ((aggregate_type, aggregate_id), head) in &self.signed {
                let stream = self
                    .streams
                    .get(&(aggregate_type.clone(), aggregate_id.clone()));
                let reached = stream.map_or(0, |s| s.next - 1);
                let gap_found = stream.is_some_and(|s| !s.early.is_empty());
                if reached < head.sequence && !gap_found {
                    let key = (aggregate_type.as_str(), aggregate_id.as_str());
                    let problem = ChainProblem::Removed {
                        signed_sequence: head.sequence,
                    };
                    self.findings.found(broken(key, reached + 1, None, problem));
                }
            }
        }
        let mut heads = self.signed;
        for (key, stream) in self.streams {
            if let Some(hash) = stream.last {
                let sequence = stream.next - 1;
                heads.insert(key, Head { sequence, hash });
            }
        }
        (self.findings, heads)
    }
}

fn broken(
    (aggregate_type, aggregate_id): (&str, &str),
    sequence: i64,
    global_position: Option<i64>,
    problem: ChainProblem,
) -> BrokenLink {
    BrokenLink {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        sequence,
        global_position,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stream `s` of events 1..=n, hash i for event i, positions 10 + i.
    fn event(sequence: i64) -> Link<'static> {
        Link {
            aggregate_type: "Account",
            aggregate_id: "s",
            sequence,
            global_position: 10 + sequence,
            chain_version: 2,
            previous: (sequence > 1).then(|| [sequence as u8 - 1; 32]),
            hash: [sequence as u8; 32],
            intact: true,
        }
    }

    fn signed(sequence: i64, hash: u8) -> Heads {
        Heads::from([(
            ("Account".to_owned(), "s".to_owned()),
            Head {
                sequence,
                hash: [hash; 32],
            },
        )])
    }

    fn walk(mut walk: Walk, events: impl IntoIterator<Item = Link<'static>>) -> Findings {
        for event in events {
            walk.push(event);
        }
        walk.finish().0
    }

    fn first(findings: &Findings) -> (i64, ChainProblem) {
        let broken = findings.first_broken.as_ref().expect("a problem");
        (broken.sequence, broken.problem)
    }

    #[test]
    fn an_intact_stream_in_any_order_passes_and_counts_what_the_checkpoint_covers() {
        let found = walk(Walk::checking(signed(2, 2)), [3, 1, 2].map(event));
        assert_eq!(found.first_broken, None);
        assert_eq!((found.events, found.covered), (3, 2));
    }

    #[test]
    fn each_kind_of_tampering_names_its_event() {
        let altered = Link {
            intact: false,
            ..event(2)
        };
        let found = walk(Walk::checking(Heads::new()), [event(1), altered, event(3)]);
        assert_eq!(first(&found), (2, ChainProblem::Altered));

        let found = walk(Walk::checking(Heads::new()), [1, 3].map(event));
        assert_eq!(
            first(&found),
            (
                3,
                ChainProblem::Missing {
                    expected_sequence: 2
                }
            )
        );

        let found = walk(Walk::checking(signed(3, 3)), [1, 2].map(event));
        assert_eq!(
            first(&found),
            (3, ChainProblem::Removed { signed_sequence: 3 })
        );
        assert_eq!(found.first_broken.unwrap().global_position, None);

        let found = walk(Walk::checking(signed(2, 9)), [1, 2].map(event));
        assert_eq!(first(&found), (2, ChainProblem::Rewritten));

        let relinked = Link {
            previous: Some([7; 32]),
            ..event(2)
        };
        let found = walk(Walk::checking(Heads::new()), [event(1), relinked]);
        assert_eq!(first(&found), (2, ChainProblem::Relinked));

        let older = Link {
            chain_version: 1,
            ..event(2)
        };
        let found = walk(Walk::checking(Heads::new()), [event(1), older]);
        assert_eq!(first(&found), (2, ChainProblem::Downgraded));

        let found = walk(Walk::checking(Heads::new()), [1, 2, 2].map(event));
        assert_eq!(first(&found), (2, ChainProblem::Duplicate));
    }

    #[test]
    fn extending_continues_after_the_signed_heads_and_refuses_what_they_contradict() {
        let mut extending = Walk::extending(signed(2, 2));
        extending.push(event(3));
        let (found, heads) = extending.finish();
        assert_eq!(found.first_broken, None);
        assert_eq!(heads, signed(3, 3));

        let found = walk(Walk::extending(signed(2, 8)), [event(3)]);
        assert_eq!(first(&found), (3, ChainProblem::Relinked));
        let found = walk(Walk::extending(signed(2, 2)), [event(2)]);
        assert_eq!(first(&found), (2, ChainProblem::Rewritten));
    }
}
