//! The role-based access policy of SECURITY.md, as data. Use cases ask [`Role::allows`];
//! handlers never decide access.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The five workspace roles, ordered from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Commenter,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Commenter,
        Role::Editor,
        Role::Admin,
        Role::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Commenter => "commenter",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Whether this role may perform `action` (the SECURITY.md matrix).
    pub fn allows(self, action: Action) -> bool {
        self >= action.minimum_role()
    }

    /// Whether a member with this role may set another member's role from `current` to `new`.
    ///
    /// Nobody grants a role above their own; only an owner makes or unmakes owners; an admin
    /// changes roles up to admin.
    pub fn may_change_role(self, current: Role, new: Role) -> bool {
        if !self.allows(Action::ChangeRoles) || new > self {
            return false;
        }
        if current == Role::Owner || new == Role::Owner {
            return self.allows(Action::ManageOwners);
        }
        current <= self
    }

    /// Whether a member with this role may remove a member holding `target`.
    pub fn may_remove(self, target: Role) -> bool {
        if target == Role::Owner {
            return self.allows(Action::ManageOwners);
        }
        self.allows(Action::RemoveMembers) && target <= self
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected viewer, commenter, editor, admin or owner")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Everything a member can try to do, one variant per row-item of the SECURITY.md matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    // viewer
    ReadContent,
    // commenter
    Comment,
    EditOwnComment,
    ResolveComment,
    // editor
    EditDocuments,
    EditFolders,
    Upload,
    EditContextFiles,
    RestoreVersion,
    ShareDocument,
    WriteLive,
    // admin
    DeleteOthersComments,
    DeletePermanently,
    Invite,
    ChangeRoles,
    RemoveMembers,
    ReadAudit,
    EditWorkspaceSettings,
    // owner
    ManageOwners,
    TransferOwnership,
    DeleteWorkspace,
}

impl Action {
    pub const ALL: [Action; 21] = [
        Action::ReadContent,
        Action::Comment,
        Action::EditOwnComment,
        Action::ResolveComment,
        Action::EditDocuments,
        Action::EditFolders,
        Action::Upload,
        Action::EditContextFiles,
        Action::RestoreVersion,
        Action::ShareDocument,
        Action::WriteLive,
        Action::DeleteOthersComments,
        Action::DeletePermanently,
        Action::Invite,
        Action::ChangeRoles,
        Action::RemoveMembers,
        Action::ReadAudit,
        Action::EditWorkspaceSettings,
        Action::ManageOwners,
        Action::TransferOwnership,
        Action::DeleteWorkspace,
    ];

    /// The least role that may perform this action.
    pub fn minimum_role(self) -> Role {
        use Action::*;
        match self {
            ReadContent => Role::Viewer,
            Comment | EditOwnComment | ResolveComment => Role::Commenter,
            EditDocuments | EditFolders | Upload | EditContextFiles | RestoreVersion
            | ShareDocument | WriteLive => Role::Editor,
            DeleteOthersComments
            | DeletePermanently
            | Invite
            | ChangeRoles
            | RemoveMembers
            | ReadAudit
            | EditWorkspaceSettings => Role::Admin,
            ManageOwners | TransferOwnership | DeleteWorkspace => Role::Owner,
        }
    }

    /// Whether the action changes stored data (refused to read-only API tokens).
    pub fn writes(self) -> bool {
        !matches!(self, Action::ReadContent | Action::ReadAudit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    /// The SECURITY.md matrix written out by hand, row by row: each action with the roles allowed.
    fn expected(action: Action) -> &'static [Role] {
        use Action::*;
        match action {
            ReadContent => &[Viewer, Commenter, Editor, Admin, Owner],
            Comment | EditOwnComment | ResolveComment => &[Commenter, Editor, Admin, Owner],
            EditDocuments | EditFolders | Upload | EditContextFiles | RestoreVersion
            | ShareDocument | WriteLive => &[Editor, Admin, Owner],
            DeleteOthersComments
            | DeletePermanently
            | Invite
            | ChangeRoles
            | RemoveMembers
            | ReadAudit
            | EditWorkspaceSettings => &[Admin, Owner],
            ManageOwners | TransferOwnership | DeleteWorkspace => &[Owner],
        }
    }

    #[test]
    fn every_role_and_action_follows_the_matrix() {
        for action in Action::ALL {
            for role in Role::ALL {
                assert_eq!(
                    role.allows(action),
                    expected(action).contains(&role),
                    "{role} × {action:?}"
                );
            }
        }
    }

    #[test]
    fn role_changes_never_grant_above_own_role() {
        for actor in Role::ALL {
            for current in Role::ALL {
                for new in Role::ALL {
                    let allowed = actor.may_change_role(current, new);
                    let expected = match actor {
                        Owner => true,
                        Admin => current <= Admin && new <= Admin,
                        _ => false,
                    };
                    assert_eq!(allowed, expected, "{actor} sets {current} → {new}");
                }
            }
        }
    }

    #[test]
    fn removal_follows_rank() {
        assert!(Owner.may_remove(Owner));
        assert!(!Admin.may_remove(Owner));
        assert!(Admin.may_remove(Admin));
        assert!(Admin.may_remove(Viewer));
        assert!(!Editor.may_remove(Viewer));
        assert!(!Viewer.may_remove(Viewer));
    }

    #[test]
    fn roles_round_trip_through_strings() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
        assert!("Owner".parse::<Role>().is_err());
    }
}
