//! `FreeListWalk`: free pages found by following the buddy allocator's free lists (formats.md
//! 4.8), for level 16 on kernels whose VMCOREINFO does not allow buddy detection.

use super::error::FilterError;
use super::mem_section::SectionMap;
use super::memory::PhysicalMemory;
use super::translate::Translator;
use super::walk::clear_counting;
use crate::bitmap::Bitmap;
use crate::vmcoreinfo::VmcoreInfo;

const NEEDED: &str = "dump level 16 without buddy detection (free lists, 4.8)";
/// Nodes examined at most (`MAX_NUMNODES` is 1024 on x86_64).
const MAX_NODES: u64 = 1 << 10;

/// The VMCOREINFO sizes and offsets the free-list walk needs.
pub struct FreeListWalk {
    node_data: NodeData,
    online: Option<(u64, u64)>,
    node_zones: u64,
    nr_zones: u64,
    zone_size: u64,
    spanned: u64,
    free_area: u64,
    free_area_size: u64,
    free_list: u64,
    orders: u64,
    types: u64,
    list_head_size: u64,
    next: u64,
    prev: u64,
    lru: u64,
}

/// Where each node's `pglist_data` is.
enum NodeData {
    /// `SYMBOL(node_data)`: an array of `LENGTH(node_data)` pointers.
    Array { addr: u64, len: u64 },
    /// `SYMBOL(contig_page_data)`: node 0 only.
    Contig(u64),
}

impl FreeListWalk {
    /// Collects the keys; errs naming the first missing one.
    pub fn from_info(info: &VmcoreInfo) -> Result<FreeListWalk, FilterError> {
        let size = |name: &str, key: &'static str| {
            info.size(name).ok_or(FilterError::missing(key, NEEDED))
        };
        let offset = |name: &str, key: &'static str| {
            info.offset(name).ok_or(FilterError::missing(key, NEEDED))
        };
        let length = |name: &str, key: &'static str| {
            info.length(name).ok_or(FilterError::missing(key, NEEDED))
        };
        let node_data = match (info.symbol("node_data"), info.length("node_data")) {
            (Some(addr), Some(len)) => NodeData::Array { addr, len },
            _ => NodeData::Contig(
                info.symbol("contig_page_data")
                    .ok_or(FilterError::missing("SYMBOL(node_data)", NEEDED))?,
            ),
        };
        let nodemask = info.size("nodemask_t").unwrap_or(8).clamp(8, MAX_NODES / 8);
        let online = match (info.symbol("node_online_map"), info.symbol("node_states")) {
            (Some(map), _) => Some((map, nodemask)),
            (None, Some(states)) => info
                .number("N_ONLINE")
                .filter(|&n| (0..64).contains(&n))
                .map(|n| (states.wrapping_add(n as u64 * nodemask), nodemask)),
            (None, None) => None,
        };
        Ok(FreeListWalk {
            node_data,
            online,
            node_zones: offset("pglist_data.node_zones", "OFFSET(pglist_data.node_zones)")?,
            nr_zones: offset("pglist_data.nr_zones", "OFFSET(pglist_data.nr_zones)")?,
            zone_size: size("zone", "SIZE(zone)")?,
            spanned: offset("zone.spanned_pages", "OFFSET(zone.spanned_pages)")?,
            free_area: offset("zone.free_area", "OFFSET(zone.free_area)")?,
            free_area_size: size("free_area", "SIZE(free_area)")?,
            free_list: offset("free_area.free_list", "OFFSET(free_area.free_list)")?,
            orders: length("zone.free_area", "LENGTH(zone.free_area)")?.min(64),
            types: length("free_area.free_list", "LENGTH(free_area.free_list)")?.min(64),
            list_head_size: size("list_head", "SIZE(list_head)")?,
            next: offset("list_head.next", "OFFSET(list_head.next)")?,
            prev: offset("list_head.prev", "OFFSET(list_head.prev)")?,
            lru: offset("page.lru", "OFFSET(page.lru)")?,
        })
    }

    /// Follows every free list of every online node, clearing `2^order` pfns per entry.
    /// Returns the number of bits cleared.
    pub fn run<M: PhysicalMemory + ?Sized>(
        &self,
        tr: &mut Translator<'_, M>,
        map: &SectionMap,
        bitmap: &mut Bitmap,
    ) -> Result<u64, FilterError> {
        let mut cleared = 0u64;
        let mut budget = bitmap.bits(); // a free list cannot hold more entries than pages
        for node in self.online_nodes(tr)? {
            let pgdat = match self.node_data {
                NodeData::Array { addr, .. } => {
                    tr.read_u64(addr.wrapping_add(node * 8), "node_data")?
                }
                NodeData::Contig(addr) => addr,
            };
            if pgdat == 0 {
                continue;
            }
            let mut nr = [0u8; 4];
            tr.read(
                pgdat.wrapping_add(self.nr_zones),
                &mut nr,
                "pglist_data.nr_zones",
            )?;
            let nr_zones = u64::from(i32::from_le_bytes(nr).clamp(0, 64) as u32);
            for zone_index in 0..nr_zones {
                let zone = pgdat
                    .wrapping_add(self.node_zones)
                    .wrapping_add(zone_index.wrapping_mul(self.zone_size));
                let spanned = tr.read_u64(zone.wrapping_add(self.spanned), "zone.spanned_pages")?;
                if spanned == 0 {
                    continue;
                }
                for order in (0..self.orders).rev() {
                    for migrate_type in 0..self.types {
                        let head = zone
                            .wrapping_add(self.free_area)
                            .wrapping_add(order.wrapping_mul(self.free_area_size))
                            .wrapping_add(self.free_list)
                            .wrapping_add(migrate_type.wrapping_mul(self.list_head_size));
                        let at = ListAt {
                            node,
                            zone: zone_index,
                            order,
                            migrate_type,
                        };
                        cleared += self.list(tr, map, bitmap, head, at, &mut budget)?;
                    }
                }
            }
        }
        Ok(cleared)
    }

    /// One free list.
    fn list<M: PhysicalMemory + ?Sized>(
        &self,
        tr: &mut Translator<'_, M>,
        map: &SectionMap,
        bitmap: &mut Bitmap,
        head: u64,
        at: ListAt,
        budget: &mut u64,
    ) -> Result<u64, FilterError> {
        let corrupt = |entry: u64, why: &'static str| FilterError::CorruptFreeList {
            node: at.node,
            zone: at.zone,
            order: at.order,
            migrate_type: at.migrate_type,
            entry,
            why,
        };
        let mut cleared = 0u64;
        let mut hint = 0usize;
        let mut previous = head;
        let mut entry = tr.read_u64(head.wrapping_add(self.next), "a free list")?;
        while entry != head {
            *budget = budget
                .checked_sub(1)
                .ok_or(corrupt(entry, "more entries than pages (a loop)"))?;
            let prev = tr.read_u64(entry.wrapping_add(self.prev), "a free list entry")?;
            if prev != previous {
                return Err(corrupt(entry, "its prev link does not point back"));
            }
            let page = entry.wrapping_sub(self.lru);
            let pfn = map
                .pfn_of(page, &mut hint)
                .ok_or(corrupt(entry, "not a struct page of any section"))?;
            cleared += clear_counting(bitmap, pfn..pfn.saturating_add(1 << at.order));
            previous = entry;
            entry = tr.read_u64(entry.wrapping_add(self.next), "a free list entry")?;
        }
        Ok(cleared)
    }

    /// Online node numbers; node 0 alone if the kernel exports no node mask.
    fn online_nodes<M: PhysicalMemory + ?Sized>(
        &self,
        tr: &mut Translator<'_, M>,
    ) -> Result<Vec<u64>, FilterError> {
        let limit = match self.node_data {
            NodeData::Array { len, .. } => len.min(MAX_NODES),
            NodeData::Contig(_) => 1,
        };
        let Some((addr, len)) = self.online else {
            return Ok(vec![0]);
        };
        let mut mask = vec![0u8; len as usize];
        tr.read(addr, &mut mask, "node_online_map")?;
        Ok((0..limit.min(len * 8))
            .filter(|&n| {
                mask.get((n / 8) as usize)
                    .is_some_and(|b| b >> (n % 8) & 1 == 1)
            })
            .collect())
    }
}

/// Which list is being walked, for error messages.
#[derive(Clone, Copy)]
struct ListAt {
    node: u64,
    zone: u64,
    order: u64,
    migrate_type: u64,
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeMachine, Page, PAGES_PER_SECTION, PAGE_OFFSET};
    use super::super::tests::{cleared, machine, run};
    use super::FilterError;

    #[test]
    fn free_lists_replace_buddy_detection() {
        let mut m = machine();
        m.drop = vec!["NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)"];
        // node_online_map, node_data[0] -> pglist_data with one zone; free_area[2] type 1 holds one
        // block of 4 at pfn 0x100 and one at 0x208; everything in the direct map.
        let pa = |va: u64| va - PAGE_OFFSET;
        let (online, node_data, pgdat) = (
            PAGE_OFFSET + 0x50_0000,
            PAGE_OFFSET + 0x50_1000,
            PAGE_OFFSET + 0x51_0000,
        );
        m.extra.push_str(&format!(
            "SYMBOL(node_online_map)={online:x}\nSIZE(nodemask_t)=128\nSYMBOL(node_data)={node_data:x}\n\
             LENGTH(node_data)=1024\nSIZE(zone)=1536\nSIZE(free_area)=88\nSIZE(list_head)=16\n\
             OFFSET(pglist_data.node_zones)=0\nOFFSET(pglist_data.nr_zones)=171552\n\
             OFFSET(zone.free_area)=256\nOFFSET(zone.spanned_pages)=144\nOFFSET(free_area.free_list)=0\n\
             OFFSET(list_head.next)=0\nOFFSET(list_head.prev)=8\nLENGTH(free_area.free_list)=5\n"
        ));
        m.memory.write(pa(online), &[1]);
        m.memory.write_u64(pa(node_data), pgdat);
        m.memory.write(pa(pgdat + 171_552), &1u32.to_le_bytes());
        m.memory.write_u64(pa(pgdat + 144), 2 * PAGES_PER_SECTION);
        let head = pgdat + 256 + 2 * 88 + 16;
        let (a, b) = (
            FakeMachine::struct_page(0x100) + 8,
            FakeMachine::struct_page(0x208) + 8,
        );
        m.memory.write_u64(pa(head), a);
        m.set_page(
            0x100,
            Page {
                compound_head: b,
                lru_prev: Some(head),
                ..Page::plain()
            },
        );
        m.set_page(
            0x208,
            Page {
                compound_head: head,
                lru_prev: Some(a),
                ..Page::plain()
            },
        );
        for list in 0..5u64 * 11 {
            let h = pgdat + 256 + (list / 5) * 88 + (list % 5) * 16;
            if h != head {
                m.memory.write_u64(pa(h), h);
            }
        }
        let (bits, report) = run(&m, 16).expect("free lists");
        let mut want: Vec<u64> = (0x100..0x104).collect();
        want.extend(0x208..0x20c);
        assert_eq!(cleared(&bits), want);
        assert!(report.free_lists && !report.walked);
        // A broken prev link is corruption, not silence.
        m.set_page(
            0x208,
            Page {
                compound_head: head,
                lru_prev: Some(head),
                ..Page::plain()
            },
        );
        let err = run(&m, 16).expect_err("corrupt");
        assert!(matches!(err, FilterError::CorruptFreeList { .. }), "{err}");
        // Without the keys, level 16 is refused by name.
        m.drop.push("OFFSET(zone.free_area)");
        let err = run(&m, 16).expect_err("no keys");
        assert!(err.to_string().contains("OFFSET(zone.free_area)"), "{err}");
    }
}
