// Maps one extent of a 4 KiB arena into a reservation through the installed vmm package.
#include <cstdio>
#include <cstring>

#include "vmm/vmm.h"

int main() {
  vmm::ArenaOptions o;
  o.name = "consumer";
  o.capacity_bytes = 1 << 20;
  o.page_size = vmm::PageSizePolicy::kSmall;
  auto arena = vmm::Arena::Create(o);
  vmm::CheckOk(arena.status(), "create arena");
  auto extent = (*arena)->Allocate(64 << 10);
  vmm::CheckOk(extent.status(), "allocate");
  auto res = vmm::Reservation::Reserve(1 << 20);
  vmm::CheckOk(res.status(), "reserve");
  std::memcpy(extent->data(), "zero-copy", 10);
  vmm::CheckOk((*res)->Map(0, *extent), "map");
  if (std::strcmp(reinterpret_cast<char*>((*res)->base()), "zero-copy") != 0) return 1;
  std::printf("consumer ok: %s\n", (*arena)->Stats().ToString().c_str());
  return 0;
}
