//! Image clean-up after a good deploy (part of the retire). The only images it may remove
//! are those this app's releases went live from (`deployed_images` in `state.json`, the
//! latest first): of those it keeps the latest `keep-images`, and besides them, however
//! old, the image either slot's container runs and the one state records for each slot
//! (the live version, the rollback target). It removes them tag by tag, and only the tags
//! this app went live as (`deployed_tags`) that no other app's state beside it records: an
//! image someone else tagged too stays, untagged of ours. Another app's images, even of the
//! same repository, are never its to remove. Docker runtime only: compose files and deploy
//! commands name their own images.

use std::time::Duration;

use crate::input::{Image, Slot};
use crate::runtime::Runtime;
use crate::state::{State, StateSource};

use super::engine::Engine;

/// How long listing, sizing or removing images may take.
const IMAGE_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

impl Engine<'_> {
    /// Removes the images this app deployed beyond the latest `keep-images`, sparing every
    /// image a slot uses or state records. Says what it did; problems are said as warnings.
    pub(super) fn clean_images(&mut self) -> Vec<String> {
        let plan = self.plan;
        let keep = plan.retire.keep_images as usize;
        if keep == 0 || plan.runtime.runtime != Runtime::Docker {
            return Vec::new();
        }
        let Ok(loaded) =
            plan.store()
                .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)
        else {
            return vec!["warning: image clean-up skipped: state.json cannot be read".into()];
        };
        if loaded.source != StateSource::File {
            return vec![
                "image clean-up skipped: state.json was rebuilt, so the images it recorded are not known".into(),
            ];
        }
        let state = loaded.state;
        let spared = self.spared_images(&state);
        let old: Vec<&String> = state
            .deployed_images
            .iter()
            .skip(keep)
            .filter(|id| !spared.iter().any(|s| s.as_str() == id.as_str()))
            .collect();
        if old.is_empty() {
            return vec![format!(
                "kept the {} images this app deployed last (keep-images {keep}): nothing to remove",
                state.deployed_images.len().min(keep)
            )];
        }
        let commands = self.commands();
        let Some(tags) = self.tags_of_repositories(&state) else {
            return vec![
                "warning: image clean-up skipped: the image listing is too long to read whole"
                    .into(),
            ];
        };
        let others = other_apps_images(&plan.app, &plan.store());
        let mut removed = Vec::new();
        let mut gone = Vec::new();
        let mut freed = 0u64;
        let mut problems = Vec::new();
        for id in old {
            let size = |me: &mut Self| {
                me.host
                    .run(&commands.image_size(id), IMAGE_COMMAND_TIMEOUT)
                    .ok()
                    .and_then(|out| out.stdout.trim().parse::<u64>().ok())
            };
            let Some(bytes) = size(self) else {
                // Already gone from the host (pruned by hand): nothing to remove.
                gone.push(id.clone());
                continue;
            };
            let naming: Vec<&String> = tags
                .iter()
                .filter(|(tagged, _)| tagged == id)
                .map(|(_, tag)| tag)
                .collect();
            // Only the tags this app went live as, and none another app's state records:
            // an image tagged by someone else stays, untagged of ours only.
            let mut references: Vec<String> = naming
                .iter()
                .filter(|tag| state.deployed_tags.contains(tag) && !others.contains(tag))
                .map(|tag| (*tag).clone())
                .collect();
            if naming.is_empty() {
                references.push(id.clone());
            }
            for reference in &references {
                match self
                    .host
                    .run(&commands.remove_image(reference), IMAGE_COMMAND_TIMEOUT)
                {
                    Ok(_) => removed.push(reference.clone()),
                    Err(e) => {
                        problems.push(format!("warning: could not remove image {reference}: {e}"))
                    }
                }
            }
            // Untagged here, the image may live on under another repository's tag.
            if size(self).is_none() {
                freed += bytes;
                gone.push(id.clone());
            }
        }
        if let Err(e) = self.update_state(|state| state.without_images(&gone)) {
            problems.push(format!(
                "warning: could not record the removed images: {}",
                e.error
            ));
        }
        let mut lines = vec![format!(
            "removed {} (up to {:.1} MB freed: layers they share with kept images stay), keeping the {keep} images this app deployed last and those its slots use",
            if removed.is_empty() {
                "nothing".to_owned()
            } else {
                removed.join(", ")
            },
            freed as f64 / 1e6
        )];
        lines.extend(problems);
        lines
    }

    /// The images never removed: each slot's container's, each slot's recorded one (by ID,
    /// and what its recorded tag names now), and the one the plan's image names now.
    fn spared_images(&mut self, state: &State) -> Vec<Image> {
        let mut spared = Vec::new();
        for slot in [Slot::Blue, Slot::Green] {
            let record = state.slots.get(slot);
            spared.extend(self.slot_image_id(slot, None));
            spared.extend(record.image_id.as_deref().and_then(|id| id.parse().ok()));
            if let Some(image) = record
                .image
                .as_deref()
                .and_then(|i| i.parse::<Image>().ok())
            {
                spared.extend(self.image_id(&image));
            }
        }
        if let Some(image) = self.plan.runtime.image.clone() {
            spared.extend(self.image_id(&image));
        }
        spared
    }

    /// The tags (`ID`, `REPOSITORY:TAG`) of the repositories the slots' recorded images and
    /// the plan's image belong to, to remove an image by its tags (Docker refuses to
    /// remove an image by ID while several tags name it); `None` when a listing was too
    /// long to be kept whole.
    fn tags_of_repositories(&mut self, state: &State) -> Option<Vec<(String, String)>> {
        let mut repositories: Vec<String> = [Slot::Blue, Slot::Green]
            .iter()
            .filter_map(|slot| state.slots.get(*slot).image.as_deref())
            .chain(self.plan.runtime.image.as_ref().map(Image::as_str))
            .filter_map(|i| i.parse::<Image>().ok())
            .map(|i| i.repository().to_owned())
            .collect();
        repositories.sort();
        repositories.dedup();
        let commands = self.commands();
        let mut tags = Vec::new();
        for repository in repositories {
            let Some(list) = commands.images_of(&repository) else {
                continue;
            };
            if let Ok(out) = self.host.run(&list, IMAGE_COMMAND_TIMEOUT) {
                if out.stdout.starts_with(crate::exec::OUTPUT_CUT_MARK) {
                    // Too long to read whole: an image whose lines were cut would look
                    // untagged and be removed by ID, whoever's tag it carries.
                    return None;
                }
                tags.extend(listed_tags(&out.stdout));
            }
        }
        Some(tags)
    }
}

/// The image references the states of other apps, in directories beside `store`, record
/// for their slots: never this app's to remove.
fn other_apps_images(app: &crate::input::AppName, store: &crate::state::StateStore) -> Vec<String> {
    store
        .neighbours(app)
        .into_iter()
        .flat_map(|(_, state)| {
            ["blue", "green"]
                .iter()
                .filter_map(|slot| Some(state["slots"][slot]["image"].as_str()?.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `(ID, REPOSITORY:TAG)` pairs of an `ID REPOSITORY:TAG` listing, without the
/// untagged ones (`REPOSITORY:<none>`, removed by ID).
fn listed_tags(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| line.trim().split_once(' '))
        .filter(|(_, reference)| !reference.ends_with(":<none>"))
        .map(|(id, reference)| (id.to_owned(), reference.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_each_tag_its_image_and_leaves_out_untagged_ones() {
        let listing =
            "sha256:cc shop:3\nsha256:bb shop:2\nsha256:bb shop:latest\nsha256:aa shop:<none>\n\n";
        let tags = listed_tags(listing);
        let pairs: Vec<(&str, &str)> = tags.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("sha256:cc", "shop:3"),
                ("sha256:bb", "shop:2"),
                ("sha256:bb", "shop:latest")
            ]
        );
    }
}
