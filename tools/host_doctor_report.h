// tools/host_doctor_report.h: host_doctor's report of an Examine()d host, as text or as JSON.
//
// Thread safety: prints to stdout; call from one thread.
#ifndef TOOLS_HOST_DOCTOR_REPORT_H_
#define TOOLS_HOST_DOCTOR_REPORT_H_

#include <vector>

#include "tools/host_doctor_probe.h"

namespace emoe::tools {

// The facts per section, then the verdicts with their fixes.
void PrintText(const Report& r);
// One JSON object: the facts per section, max_map_count and the verdicts.
void PrintJson(const Report& r);
// Whether a verdict is MISSING (--strict).
bool AnyMissing(const std::vector<Verdict>& verdicts);

}  // namespace emoe::tools

#endif  // TOOLS_HOST_DOCTOR_REPORT_H_
