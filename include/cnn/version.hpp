// The library's version. CMakeLists.txt reads it from here, so find_package(cnn 0.3)
// and these macros always agree.
#pragma once

#define CNN_VERSION_MAJOR 0
#define CNN_VERSION_MINOR 3
#define CNN_VERSION_PATCH 0
/// One number to compare in #if: major * 10000 + minor * 100 + patch (0.3.0 is 300).
#define CNN_VERSION (CNN_VERSION_MAJOR * 10000 + CNN_VERSION_MINOR * 100 + CNN_VERSION_PATCH)
#define CNN_VERSION_STRING "0.3.0"
