// vmm/vmm.h: the userspace virtual-memory manager, in one include.
//
// Glossary (used the same way in every module):
//  - OS page:     the kernel's unit of mapping: 4 KiB, or 2 MiB for huge pages.
//  - Arena:       one memfd of fixed capacity and one page size, optionally bound to a NUMA node;
//                 the physical memory (arena.h).
//  - Extent:      a refcounted run of contiguous arena pages, the unit of allocation (arena.h).
//  - Reservation: a range of virtual addresses, PROT_NONE until extents are mapped into it
//                 (reservation.h).
//  - Slot:        a page-aligned sub-range of a reservation that holds one mapping, e.g. one
//                 expert's weights; remapping a slot changes which extent it shows.
//  - Block:       a fixed-size unit of a higher-level pool (e.g. KV-cache blocks) built on extents.
//
// Layering: vmm knows nothing of models. Other modules never call mmap themselves; they map
// through Reservation and allocate through Arena.
#ifndef VMM_VMM_H_
#define VMM_VMM_H_

#include "vmm/arena.h"
#include "vmm/fd_passing.h"
#include "vmm/file.h"
#include "vmm/host.h"
#include "vmm/os.h"
#include "vmm/page_allocator.h"
#include "vmm/process.h"
#include "vmm/reservation.h"
#include "vmm/stats.h"
#include "vmm/status.h"
#include "vmm/unique_fd.h"
#include "vmm/unix_socket.h"

#endif  // VMM_VMM_H_
