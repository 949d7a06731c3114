// kaizen/version.hpp - the library version.
#pragma once

#define KAIZEN_VERSION_MAJOR 0
#define KAIZEN_VERSION_MINOR 1
#define KAIZEN_VERSION_PATCH 0

namespace kaizen {
inline constexpr const char* kVersion = "0.1.0";
}  // namespace kaizen
