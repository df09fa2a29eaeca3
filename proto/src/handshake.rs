//! The handshake: `Hello` (0x01, sender's version range) and `Welcome` (0x02, the chosen version).

use crate::error::ProtocolError;
use crate::limits::MAX_STRING;
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;
use crate::{MAGIC, PROTOCOL_VERSION};

/// The sender's first frame: the protocol versions it speaks. On the wire it starts with
/// [`MAGIC`]; the decoder checks it and the encoder writes it, so it is not a field here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Oldest protocol version the sender speaks.
    pub min_version: u16,
    /// Newest protocol version the sender speaks.
    pub max_version: u16,
    /// For logs, e.g. `crashdrop-send 0.1.0` (at most `MAX_STRING` bytes).
    pub software: String,
}

impl Hello {
    /// A `Hello` offering exactly this crate's [`PROTOCOL_VERSION`].
    pub fn new(software: impl Into<String>) -> Hello {
        Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            software: software.into(),
        }
    }

    /// The highest version in both this `Hello`'s range and `ours_min..=ours_max`, or `None` if
    /// the ranges do not meet (answer `Error UnsupportedVersion`).
    pub fn common_version(&self, ours_min: u16, ours_max: u16) -> Option<u16> {
        let low = self.min_version.max(ours_min);
        let high = self.max_version.min(ours_max);
        (low <= high).then_some(high)
    }

    /// [`common_version`](Hello::common_version) against this crate's [`PROTOCOL_VERSION`].
    pub fn negotiate(&self) -> Option<u16> {
        self.common_version(PROTOCOL_VERSION, PROTOCOL_VERSION)
    }

    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        if r.array::<8>("magic")? != MAGIC {
            return Err(ProtocolError::BadMagic);
        }
        Ok(Hello {
            min_version: r.u16("min_version")?,
            max_version: r.u16("max_version")?,
            software: r.string("software", MAX_STRING)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.bytes(&MAGIC);
        w.u16(self.min_version);
        w.u16(self.max_version);
        w.string("software", &self.software, MAX_STRING)
    }
}

/// The receiver's answer to a `Hello` it can serve: the version both will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The highest version both support.
    pub version: u16,
    /// For logs, e.g. `crashdropd 0.1.0` (at most `MAX_STRING` bytes).
    pub software: String,
}

impl Welcome {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        Ok(Welcome {
            version: r.u16("version")?,
            software: r.string("software", MAX_STRING)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u16(self.version);
        w.string("software", &self.software, MAX_STRING)
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;

    fn range(min_version: u16, max_version: u16) -> Hello {
        Hello {
            min_version,
            max_version,
            software: String::new(),
        }
    }

    #[test]
    fn negotiates_the_highest_common_version() {
        assert_eq!(Hello::new("t").negotiate(), Some(PROTOCOL_VERSION));
        assert_eq!(range(1, 5).common_version(1, 3), Some(3));
        assert_eq!(range(2, 5).common_version(1, 3), Some(3));
        assert_eq!(range(4, 5).common_version(1, 3), None);
        assert_eq!(range(1, 1).common_version(2, 3), None);
        assert_eq!(range(3, 1).common_version(1, 3), None, "inverted range");
    }

    #[test]
    fn wire_layout() {
        let mut dst = BytesMut::new();
        Hello {
            min_version: 1,
            max_version: 2,
            software: "s".into(),
        }
        .encode(&mut PayloadWriter::new("Hello", &mut dst))
        .expect("encodes");
        assert_eq!(&dst[..], b"CRSHDROP\x00\x01\x00\x02\x00\x01s");
    }

    #[test]
    fn rejects_bad_magic() {
        let mut r = PayloadReader::new(
            "Hello",
            Bytes::from_static(b"CRSHDRIP\x00\x01\x00\x01\x00\x00"),
        );
        assert!(matches!(
            Hello::decode(&mut r),
            Err(ProtocolError::BadMagic)
        ));
    }

    #[test]
    fn refuses_to_encode_a_long_software_string() {
        let mut dst = BytesMut::new();
        let welcome = Welcome {
            version: 1,
            software: "v".repeat(MAX_STRING + 1),
        };
        assert!(matches!(
            welcome.encode(&mut PayloadWriter::new("Welcome", &mut dst)),
            Err(ProtocolError::FieldTooLong {
                field: "software",
                ..
            })
        ));
    }
}
