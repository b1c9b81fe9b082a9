//! Typed identifiers. Every id is a UUID v7 (time-ordered), so new rows append to indexes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A user of MD Creator (one row in `users`).
    UserId
);
id_type!(
    /// A team workspace.
    WorkspaceId
);
id_type!(
    /// A folder inside a workspace.
    FolderId
);
id_type!(
    /// A Markdown document.
    DocumentId
);
id_type!(
    /// An invitation to a workspace.
    InvitationId
);
id_type!(
    /// A registered sync device (a desktop install, a browser profile).
    DeviceId
);
id_type!(
    /// A file attached to a document (bytes in the blob store).
    AttachmentId
);
id_type!(
    /// A context file of a workspace (or of one document) for the AI features.
    ContextFileId
);
id_type!(
    /// A comment on a document (a thread root, or a reply in a thread).
    CommentId
);
id_type!(
    /// A notification for one user (a mention, a reply to their thread).
    NotificationId
);
