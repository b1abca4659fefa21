#include <parasol/version.hpp>

namespace parasol {
const char* version() { return PARASOL_VERSION; }
}  // namespace parasol
