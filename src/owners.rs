//! Who could change a path: whether what root runs or opens (the boot unit's helper,
//! nginx's access log) is root's alone, so no deploy user can swap or redirect it.

use std::path::Path;

/// Why a user other than root could change what `path` names, if one could: `path` (which
/// must exist) and each directory above it must be owned by root, be no symbolic link (the
/// path is used as given, so a link anywhere in it could be re-pointed), and be writable by
/// no one else. Above the last component two kinds of shared directory are accepted: one
/// with the sticky bit (`/tmp`: there only root may rename or remove root's entries), and
/// one writable by a group that no user account (uid 1000 and up) belongs to (Ubuntu's
/// `/var/log`, `root:syslog 0775`).
pub fn root_only(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    let accounts = UserAccounts::read();
    for (depth, place) in path.ancestors().enumerate() {
        let meta =
            std::fs::symlink_metadata(place).map_err(|e| format!("{}: {e}", place.display()))?;
        if meta.file_type().is_symlink() {
            return Err(format!("{} is a symbolic link", place.display()));
        }
        if meta.uid() != 0 {
            return Err(format!(
                "{} is owned by uid {}, not root",
                place.display(),
                meta.uid()
            ));
        }
        let mode = meta.mode();
        let shared_ok = depth > 0 && meta.is_dir();
        let others_ok = mode & 0o002 == 0 || (shared_ok && mode & 0o1000 != 0);
        let group_ok = mode & 0o020 == 0
            || (shared_ok && (mode & 0o1000 != 0 || !accounts.in_group(meta.gid())));
        if !others_ok || !group_ok {
            return Err(format!(
                "{} may be written by its group or others (mode {:o})",
                place.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The user accounts (uid 1000 and up, as Debian numbers them) and the groups they are
/// in, from /etc/passwd and /etc/group: who could be a deploy user.
struct UserAccounts {
    /// Their primary groups.
    primary: Vec<u32>,
    /// Their names.
    names: Vec<String>,
    /// Each group's gid and members.
    groups: Vec<(u32, Vec<String>)>,
}

impl UserAccounts {
    fn read() -> UserAccounts {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        UserAccounts::parse(&passwd, &group)
    }

    fn parse(passwd: &str, group: &str) -> UserAccounts {
        let mut primary = Vec::new();
        let mut names = Vec::new();
        for fields in passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if let (Some(name), Some(Ok(uid)), Some(Ok(gid))) = (
                fields.first(),
                fields.get(2).map(|u| u.parse::<u32>()),
                fields.get(3).map(|g| g.parse::<u32>()),
            ) && (1000..65534).contains(&uid)
            {
                primary.push(gid);
                names.push((*name).to_owned());
            }
        }
        let groups = group
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split(':').collect();
                let gid = fields.get(2)?.parse().ok()?;
                let members = fields
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|n| !n.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                Some((gid, members))
            })
            .collect();
        UserAccounts {
            primary,
            names,
            groups,
        }
    }

    /// Whether a user account belongs to group `gid`; unknown files count as yes.
    fn in_group(&self, gid: u32) -> bool {
        if self.names.is_empty() && self.groups.is_empty() {
            return true;
        }
        self.primary.contains(&gid)
            || self
                .groups
                .iter()
                .any(|(g, members)| *g == gid && members.iter().any(|m| self.names.contains(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_only_refuses_what_another_user_could_change() {
        use std::os::unix::fs::PermissionsExt;
        if !crate::sys::testing::is_root() {
            return; // ownership by root can only be set up as root
        }
        let dir = tempfile::tempdir().unwrap(); // root's, 0700, under the sticky /tmp
        assert_eq!(root_only(dir.path()), Ok(()));
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = root_only(&open).unwrap_err();
        assert!(
            why.contains("may be written by its group or others"),
            "{why}"
        );
        let below = open.join("below");
        std::fs::create_dir(&below).unwrap();
        assert!(
            root_only(&below).is_err(),
            "a directory under an open one is not root's"
        );
        let owned = dir.path().join("owned");
        std::fs::create_dir(&owned).unwrap();
        std::os::unix::fs::chown(&owned, Some(65534), None).unwrap();
        let why = root_only(&owned.clone()).unwrap_err();
        assert!(why.contains("owned by uid 65534"), "{why}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&owned, &link).unwrap();
        assert!(
            root_only(&link).is_err(),
            "a link is followed to what it names"
        );
        assert!(root_only(&dir.path().join("missing")).is_err());
    }
}
