//! Comments on documents: threads (a root comment and its replies, one level deep), `@`-mentions
//! that notify, resolve/reopen of threads, author-only edits, soft deletes.
//!
//! Rules (SECURITY.md matrix, document access = workspace role or document grant):
//! - reading needs ≥ viewer of the document; commenting, replying, resolving ≥ commenter;
//! - only the author edits a comment (and still needs ≥ commenter); the author or an admin
//!   deletes it;
//! - a reply's parent is a live top-level comment of the same document; only roots resolve;
//! - a deleted comment is a tombstone: a deleted root that still has replies is listed as
//!   deleted (no body), otherwise deleted comments are not listed;
//! - in a document in the trash, comments can be read but not written.
//!
//! Mentions: `@[<user uuid>]` or `@email`. A mention notifies the user only when they can see
//! the document, and never the author. Whether an e-mail belongs to anyone is never revealed:
//! a mention that does not resolve to such a user is dropped silently, exactly like one that
//! names nobody. A reply also notifies the thread's author (once, even when also mentioned).
//! An edit notifies only the users it newly mentions.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access::{Access, AccessError, Caller};
use crate::documents::{Document, DocumentRepository};
use crate::feed::{Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::notifications::{Notification, NotificationKind};
use crate::pagination::{Limit, Page, decode_cursor, encode_cursor, page_from};
use crate::ports::{Clock, StoreError};
use crate::rbac::Action;
use crate::users::UserRepository;
use crate::values::{Email, Invalid, Version};
use crate::{CommentId, DocumentId, NotificationId, UserId, WorkspaceId};

/// Largest comment body in bytes (SECURITY.md "Limits": comment 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest anchor, serialized as JSON.
pub const MAX_ANCHOR_BYTES: usize = 4 * 1024;
/// Mentions looked at per comment; further ones are ignored.
pub const MAX_MENTIONS: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: CommentId,
    pub workspace_id: WorkspaceId,
    pub document_id: DocumentId,
    /// The thread's root for a reply; `None` for a root.
    pub parent_id: Option<CommentId>,
    pub author_id: Option<UserId>,
    /// Markdown.
    pub body: String,
    /// Where in the document: a Yjs relative position (object) or quoted text (string).
    pub anchor: Option<serde_json::Value>,
    /// The users this comment mentions (resolved, able to see the document, never the author),
    /// in id order.
    pub mentions: Vec<UserId>,
    /// 1 when created, +1 on every change.
    pub version: Version,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Comment {
    pub fn is_root(&self) -> bool {
        self.parent_id.is_none()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The root of the thread this comment belongs to.
    pub fn thread_id(&self) -> CommentId {
        self.parent_id.unwrap_or(self.id)
    }
}

/// A root comment with its live replies, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub root: Comment,
    pub replies: Vec<Comment>,
}

/// Which threads a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadQuery {
    pub document: DocumentId,
    /// `Some(true)`: resolved threads only; `Some(false)`: open ones only.
    pub resolved: Option<bool>,
    /// Roots with ids strictly after this one.
    pub after: Option<CommentId>,
    pub limit: u32,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait CommentRepository: Send + Sync {
    /// The comment in any state (deleted ones included), with its mentions; `None` when unknown.
    async fn comment(&self, id: CommentId) -> Result<Option<Comment>, StoreError>;
    /// The document's thread roots, oldest first (id order), that are live or deleted with at
    /// least one live reply, filtered by resolution, at most `limit`.
    async fn threads(&self, query: ThreadQuery) -> Result<Vec<Comment>, StoreError>;
    /// The live replies of these roots, oldest first.
    async fn replies(&self, roots: Vec<CommentId>) -> Result<Vec<Comment>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    #[error("document not found")]
    DocumentNotFound,
    #[error("comment not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("comments are limited to {limit} bytes")]
    TooLarge { limit: usize },
    #[error("only a thread's top-level comment can be resolved or reopened")]
    NotThreadRoot,
    #[error("the document is in the trash")]
    DocumentInTrash,
    #[error("a comment with this id exists already")]
    Duplicate,
    #[error("the comment changed meanwhile; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for CommentError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => CommentError::NotFound,
            AccessError::Forbidden => CommentError::Forbidden,
            AccessError::Store(e) => CommentError::Store(e),
        }
    }
}

impl From<CommitError> for CommentError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => CommentError::Store(e),
            CommitError::Duplicate(_) => CommentError::Duplicate,
            CommitError::Stale(_) => CommentError::Conflict,
            CommitError::NoOwnerLeft => CommentError::Store(StoreError::Unexpected(e.into())),
        }
    }
}

/// `POST /documents/{id}/comments`, unchecked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewComment {
    pub body: String,
    pub parent_id: Option<CommentId>,
    pub anchor: Option<serde_json::Value>,
}

/// Who a mention names, as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mention {
    User(UserId),
    Email(Email),
}

/// The ports a [`CommentService`] needs.
pub struct CommentPorts {
    pub comments: Arc<dyn CommentRepository>,
    pub documents: Arc<dyn DocumentRepository>,
    /// Resolves `@email` mentions.
    pub users: Arc<dyn UserRepository>,
    pub uow: Arc<dyn UnitOfWork>,
    pub clock: Arc<dyn Clock>,
}

pub struct CommentService {
    comments: Arc<dyn CommentRepository>,
    documents: Arc<dyn DocumentRepository>,
    users: Arc<dyn UserRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl CommentService {
    pub fn new(ports: CommentPorts, access: Access) -> Self {
        Self {
            comments: ports.comments,
            documents: ports.documents,
            users: ports.users,
            access,
            uow: ports.uow,
            clock: ports.clock,
        }
    }

    /// The document's threads, each root with its replies (≥ viewer).
    pub async fn list(
        &self,
        caller: &Caller,
        document: DocumentId,
        resolved: Option<bool>,
        limit: Limit,
        cursor: Option<&str>,
    ) -> Result<Page<Thread>, CommentError> {
        self.document(caller, document, Action::ReadContent).await?;
        let after = cursor.map(decode_cursor::<CommentId>).transpose()?;
        let roots = self
            .comments
            .threads(ThreadQuery {
                document,
                resolved,
                after,
                limit: limit.get() + 1,
            })
            .await?;
        let page = page_from(roots, limit, |c| encode_cursor(&c.id));
        let ids = page.items.iter().map(|c| c.id).collect::<Vec<_>>();
        let mut replies = if ids.is_empty() {
            Vec::new()
        } else {
            self.comments.replies(ids).await?
        };
        let items = page
            .items
            .into_iter()
            .map(|root| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut replies)
                    .into_iter()
                    .partition(|r| r.parent_id == Some(root.id));
                replies = rest;
                Thread {
                    root,
                    replies: mine,
                }
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// Comments on the document or replies in a thread (≥ commenter).
    pub async fn create(
        &self,
        caller: &Caller,
        document: DocumentId,
        request: NewComment,
    ) -> Result<Comment, CommentError> {
        self.create_with_id(caller, document, CommentId::new(), request)
            .await
    }

    /// [`create`](Self::create) with a client-chosen id (sync: a replayed create cannot make a
    /// twin; a taken id is [`CommentError::Duplicate`]).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %document))]
    pub async fn create_with_id(
        &self,
        caller: &Caller,
        document: DocumentId,
        id: CommentId,
        request: NewComment,
    ) -> Result<Comment, CommentError> {
        let doc = self.document(caller, document, Action::Comment).await?;
        if doc.deleted_at.is_some() {
            return Err(CommentError::DocumentInTrash);
        }
        let body = checked_body(&request.body)?;
        let anchor = checked_anchor(request.anchor)?;
        let root = match request.parent_id {
            None => None,
            Some(parent) => Some(self.thread_root(&doc, parent).await?),
        };
        let mentions = self.visible_mentions(&doc, caller.user_id, &body).await?;
        let now = self.clock.now();
        let comment = Comment {
            id,
            workspace_id: doc.workspace_id,
            document_id: doc.id,
            parent_id: request.parent_id,
            author_id: Some(caller.user_id),
            body,
            anchor,
            mentions,
            version: Version::FIRST,
            resolved_at: None,
            resolved_by: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let mut batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertComment(comment.clone()))
            .change(change(&comment));
        for user in &comment.mentions {
            batch = batch.write(notify(*user, NotificationKind::Mention, &comment, now));
        }
        if let Some(root_author) = root.and_then(|r| r.author_id) {
            let already = root_author == caller.user_id || comment.mentions.contains(&root_author);
            if !already && self.can_see(&doc, root_author).await? {
                batch = batch.write(notify(root_author, NotificationKind::Reply, &comment, now));
            }
        }
        self.uow.commit(batch).await?;
        Ok(comment)
    }

    /// Replaces the body (the author only, ≥ commenter). Users the new body mentions for the
    /// first time are notified.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, comment = %id))]
    pub async fn edit(
        &self,
        caller: &Caller,
        id: CommentId,
        body: String,
    ) -> Result<Comment, CommentError> {
        let (current, doc) = self.comment(caller, id, Action::EditOwnComment).await?;
        if current.author_id != Some(caller.user_id) {
            return Err(CommentError::Forbidden);
        }
        let body = checked_body(&body)?;
        if body == current.body {
            return Ok(current);
        }
        let mentions = self.visible_mentions(&doc, caller.user_id, &body).await?;
        let now = self.clock.now();
        let mut comment = current.clone();
        comment.body = body;
        comment.mentions = mentions;
        comment.version = current.version.next();
        comment.updated_at = now;
        let mut batch = self.save(caller, &comment, current.version);
        for user in comment
            .mentions
            .iter()
            .filter(|u| !current.mentions.contains(u))
        {
            batch = batch.write(notify(*user, NotificationKind::Mention, &comment, now));
        }
        self.uow.commit(batch).await?;
        Ok(comment)
    }

    /// Soft-deletes the comment (its author with ≥ commenter, or ≥ admin).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, comment = %id))]
    pub async fn delete(&self, caller: &Caller, id: CommentId) -> Result<(), CommentError> {
        let (current, doc) = self.comment(caller, id, Action::ReadContent).await?;
        if doc.deleted_at.is_some() {
            return Err(CommentError::DocumentInTrash);
        }
        let action = if current.author_id == Some(caller.user_id) {
            Action::EditOwnComment
        } else {
            Action::DeleteOthersComments
        };
        self.access
            .document(caller, doc.workspace_id, doc.id, action)
            .await?;
        let now = self.clock.now();
        let mut comment = current.clone();
        comment.deleted_at = Some(now);
        comment.updated_at = now;
        comment.version = current.version.next();
        self.uow
            .commit(self.save(caller, &comment, current.version))
            .await?;
        Ok(())
    }

    /// Resolves (`true`) or reopens (`false`) a thread (≥ commenter; roots only). Asking for the
    /// state the thread is in already changes nothing.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, comment = %id, resolved))]
    pub async fn set_resolved(
        &self,
        caller: &Caller,
        id: CommentId,
        resolved: bool,
    ) -> Result<Comment, CommentError> {
        let (current, _) = self.comment(caller, id, Action::ResolveComment).await?;
        if !current.is_root() {
            return Err(CommentError::NotThreadRoot);
        }
        if current.resolved_at.is_some() == resolved {
            return Ok(current);
        }
        let now = self.clock.now();
        let mut comment = current.clone();
        comment.resolved_at = resolved.then_some(now);
        comment.resolved_by = resolved.then_some(caller.user_id);
        comment.updated_at = now;
        comment.version = current.version.next();
        self.uow
            .commit(self.save(caller, &comment, current.version))
            .await?;
        Ok(comment)
    }

    fn save(&self, caller: &Caller, comment: &Comment, expected: Version) -> WriteBatch {
        WriteBatch::by(caller.user_id)
            .write(Write::UpdateComment {
                comment: comment.clone(),
                expected,
            })
            .change(change(comment))
    }

    /// The document, if the caller may see it (404) and perform `action` (403).
    async fn document(
        &self,
        caller: &Caller,
        id: DocumentId,
        action: Action,
    ) -> Result<Document, CommentError> {
        let not_found = |e: CommentError| match e {
            CommentError::NotFound => CommentError::DocumentNotFound,
            other => other,
        };
        let doc = self
            .documents
            .document(id)
            .await?
            .ok_or(CommentError::DocumentNotFound)?;
        self.access
            .document(caller, doc.workspace_id, id, Action::ReadContent)
            .await
            .map_err(|e| not_found(e.into()))?;
        self.access
            .document(caller, doc.workspace_id, id, action)
            .await?;
        Ok(doc)
    }

    /// A live comment of a live document that the caller may see (404 otherwise, tombstones
    /// included) and act on with `action` (403).
    async fn comment(
        &self,
        caller: &Caller,
        id: CommentId,
        action: Action,
    ) -> Result<(Comment, Document), CommentError> {
        let comment = self
            .comments
            .comment(id)
            .await?
            .ok_or(CommentError::NotFound)?;
        let doc = self
            .document(caller, comment.document_id, action)
            .await
            .map_err(|e| match e {
                CommentError::DocumentNotFound => CommentError::NotFound,
                other => other,
            })?;
        if comment.is_deleted() {
            return Err(CommentError::NotFound);
        }
        if doc.deleted_at.is_some() && action != Action::ReadContent {
            return Err(CommentError::DocumentInTrash);
        }
        Ok((comment, doc))
    }

    /// The live top-level comment of `doc` a reply hangs off; anything else is invalid, with one
    /// answer for all cases (a comment of another document is not confirmed to exist).
    async fn thread_root(
        &self,
        doc: &Document,
        parent: CommentId,
    ) -> Result<Comment, CommentError> {
        match self.comments.comment(parent).await? {
            Some(p) if p.document_id == doc.id && p.is_root() && !p.is_deleted() => Ok(p),
            Some(p) if p.document_id == doc.id && !p.is_deleted() => Err(Invalid::new(
                "parent_id",
                "replies go to a thread's top-level comment, not to a reply",
            )
            .into()),
            _ => Err(Invalid::new("parent_id", "is not a live comment of this document").into()),
        }
    }

    /// The users `body` mentions who can see the document, without the author, in id order.
    async fn visible_mentions(
        &self,
        doc: &Document,
        author: UserId,
        body: &str,
    ) -> Result<Vec<UserId>, CommentError> {
        let mut out = Vec::new();
        for mention in parse_mentions(body) {
            let user = match mention {
                Mention::User(id) => Some(id),
                Mention::Email(email) => self.users.user_by_email(&email).await?.map(|u| u.id),
            };
            let Some(user) = user else { continue };
            if user == author || out.contains(&user) {
                continue;
            }
            if self.can_see(doc, user).await? {
                out.push(user);
            }
        }
        // Stored as a set: kept in id order so that what is returned now is what is read later.
        out.sort();
        Ok(out)
    }

    /// Whether `user` may read `doc` (workspace role or document grant).
    async fn can_see(&self, doc: &Document, user: UserId) -> Result<bool, StoreError> {
        match self
            .access
            .document(
                &Caller::session(user),
                doc.workspace_id,
                doc.id,
                Action::ReadContent,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(AccessError::NotFound | AccessError::Forbidden) => Ok(false),
            Err(AccessError::Store(e)) => Err(e),
        }
    }
}

/// The mentions in `body`, distinct, in order, at most [`MAX_MENTIONS`]: `@[<uuid>]`, or
/// `@name@example.com`. An `@` glued to a preceding word character (`ada@example.com` itself)
/// starts no mention.
pub fn parse_mentions(body: &str) -> Vec<Mention> {
    let mut out: Vec<Mention> = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_MENTIONS {
        if bytes[i] != b'@' || (i > 0 && is_email_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let rest = &body[i + 1..];
        let (mention, used) = if let Some(inner) = rest.strip_prefix('[') {
            match inner.find(']') {
                Some(end) if end <= 36 => (
                    Uuid::parse_str(&inner[..end])
                        .ok()
                        .map(|u| Mention::User(UserId(u))),
                    end + 2,
                ),
                _ => (None, 1),
            }
        } else {
            let len = rest.bytes().take_while(|b| is_email_byte(*b)).count();
            let candidate = rest[..len].trim_end_matches(['.', '-']);
            let valid = candidate.matches('@').count() == 1;
            (
                valid
                    .then(|| Email::parse(candidate).ok())
                    .flatten()
                    .map(Mention::Email),
                len.max(1),
            )
        };
        if let Some(m) = mention
            && !out.contains(&m)
        {
            out.push(m);
        }
        i += 1 + used;
    }
    out
}

fn is_email_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'@')
}

/// A comment body: not blank, at most [`MAX_BODY_BYTES`], no NUL (databases refuse it).
fn checked_body(raw: &str) -> Result<String, CommentError> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(CommentError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if raw.trim().is_empty() {
        return Err(Invalid::new("body", "must not be empty").into());
    }
    if raw.contains('\0') {
        return Err(Invalid::new("body", "must not contain NUL characters").into());
    }
    Ok(raw.to_owned())
}

/// An anchor: a string (quoted text) or an object (a Yjs relative position), small, without NUL.
fn checked_anchor(
    raw: Option<serde_json::Value>,
) -> Result<Option<serde_json::Value>, CommentError> {
    let anchor = match raw {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(v @ (serde_json::Value::String(_) | serde_json::Value::Object(_))) => v,
        Some(_) => {
            return Err(Invalid::new("anchor", "must be quoted text or a position object").into());
        }
    };
    let json = anchor.to_string();
    if json.len() > MAX_ANCHOR_BYTES {
        return Err(Invalid::new(
            "anchor",
            format!("must be at most {MAX_ANCHOR_BYTES} bytes as JSON"),
        )
        .into());
    }
    if json.contains("\\u0000") {
        return Err(Invalid::new("anchor", "must not contain NUL characters").into());
    }
    Ok(Some(anchor))
}

fn notify(user: UserId, kind: NotificationKind, comment: &Comment, now: DateTime<Utc>) -> Write {
    Write::InsertNotification(Notification {
        id: NotificationId::new(),
        user_id: user,
        kind,
        workspace_id: comment.workspace_id,
        document_id: comment.document_id,
        comment_id: comment.id,
        thread_id: comment.thread_id(),
        actor_id: comment.author_id,
        created_at: now,
        read_at: None,
    })
}

fn change(comment: &Comment) -> Change {
    let change = if comment.is_deleted() {
        Change::delete(comment.workspace_id, EntityType::Comment, comment.id.0)
    } else {
        Change::upsert(comment.workspace_id, EntityType::Comment, comment.id.0)
    };
    change.with_version(comment.version.0)
}

#[cfg(test)]
mod tests;
