//! Image clean-up after a good deploy (part of the retire): the host keeps the newest
//! `keep-images` images of the app's repository and removes the older ones, but never the
//! image of either slot's container nor one that state records for a slot (the live
//! version, the rollback target), whatever their age. Docker runtime only: compose files
//! and deploy commands name their own images.

use std::time::Duration;

use crate::input::{Image, Slot};
use crate::runtime::Runtime;

use super::engine::Engine;

/// How long listing, sizing or removing images may take.
const IMAGE_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// One image of the repository: its content ID and the references (tags) naming it.
struct Listed {
    id: String,
    references: Vec<String>,
}

impl Engine<'_> {
    /// Removes the app's images beyond the newest `keep-images`, sparing every image a slot
    /// uses or state records. Says what it did; problems are said as warnings.
    pub(super) fn clean_images(&mut self) -> Vec<String> {
        let plan = self.plan;
        let keep = plan.retire.keep_images as usize;
        let image = match (&plan.runtime.image, plan.runtime.runtime) {
            (Some(image), Runtime::Docker) if keep > 0 => image.clone(),
            _ => return Vec::new(),
        };
        let repository = image.repository().to_owned();
        let commands = self.commands();
        let Some(list) = commands.images_of(&repository) else {
            return Vec::new();
        };
        let listed = match self.host.run(&list, IMAGE_COMMAND_TIMEOUT) {
            Ok(out) => listed_images(&out.stdout),
            Err(e) => {
                return vec![format!(
                    "warning: could not list the images of {repository}: {e}"
                )];
            }
        };
        let spared = self.spared_images(&image);
        let mut removed = Vec::new();
        let mut freed = 0u64;
        let mut problems = Vec::new();
        for old in listed
            .iter()
            .skip(keep)
            .filter(|l| !spared.iter().any(|s| s.as_str() == l.id))
        {
            let size = self
                .host
                .run(&commands.image_size(&old.id), IMAGE_COMMAND_TIMEOUT)
                .ok()
                .and_then(|out| out.stdout.trim().parse::<u64>().ok());
            let mut gone = true;
            for reference in &old.references {
                match self
                    .host
                    .run(&commands.remove_image(reference), IMAGE_COMMAND_TIMEOUT)
                {
                    Ok(_) => removed.push(reference.clone()),
                    Err(e) => {
                        gone = false;
                        problems.push(format!("warning: could not remove image {reference}: {e}"));
                    }
                }
            }
            // Untagged here, the image may live on under another repository's tag.
            let deleted = gone
                && self
                    .host
                    .run(&commands.image_size(&old.id), IMAGE_COMMAND_TIMEOUT)
                    .is_err();
            if deleted {
                freed += size.unwrap_or(0);
            }
        }
        let kept = listed.len().min(keep);
        let mut lines = vec![if removed.is_empty() {
            format!(
                "kept the {kept} newest images of {repository} (keep-images {keep}) and those the slots use: nothing to remove"
            )
        } else {
            format!(
                "removed {} (up to {:.1} MB freed: layers they share with kept images stay), keeping the {kept} newest images of {repository} and those the slots use",
                removed.join(", "),
                freed as f64 / 1e6
            )
        }];
        lines.extend(problems);
        lines
    }

    /// The images never removed: each slot's container's, each slot's recorded one, and
    /// the one the plan's image names now.
    fn spared_images(&mut self, image: &Image) -> Vec<Image> {
        let plan = self.plan;
        let recorded = plan
            .store()
            .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)
            .map(|loaded| loaded.state.slots)
            .unwrap_or_default();
        let mut spared = Vec::new();
        for slot in [Slot::Blue, Slot::Green] {
            spared.extend(self.slot_image_id(slot, None));
            spared.extend(
                recorded
                    .get(slot)
                    .image_id
                    .as_deref()
                    .and_then(|id| id.parse().ok()),
            );
        }
        spared.extend(self.image_id(image));
        spared
    }
}

/// The images of an `ID REPOSITORY:TAG` listing, newest first as Docker lists them, each
/// with its references (an untagged one by its ID).
fn listed_images(listing: &str) -> Vec<Listed> {
    let mut images: Vec<Listed> = Vec::new();
    for (id, reference) in listing
        .lines()
        .filter_map(|line| line.trim().split_once(' '))
    {
        let reference = if reference.ends_with(":<none>") {
            id
        } else {
            reference
        };
        match images.iter_mut().find(|l| l.id == id) {
            Some(l) => l.references.push(reference.to_owned()),
            None => images.push(Listed {
                id: id.to_owned(),
                references: vec![reference.to_owned()],
            }),
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_groups_the_tags_of_one_image_in_docker_order() {
        let listing =
            "sha256:cc shop:3\nsha256:bb shop:2\nsha256:bb shop:latest\nsha256:aa shop:<none>\n\n";
        let images = listed_images(listing);
        let ids: Vec<&str> = images.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["sha256:cc", "sha256:bb", "sha256:aa"]);
        assert_eq!(images[1].references, ["shop:2", "shop:latest"]);
        assert_eq!(images[2].references, ["sha256:aa"], "untagged: by its ID");
    }
}
