// The layer graph: chains (Sequential), residual blocks (Residual) and parallel branches
// merged by addition or concatenation (Parallel), each a layer itself, nested to any
// depth, wired at compile time (no virtual calls, no run-time graph). docs/ARCHITECTURE.md
// tells how they work together.
#pragma once

#include "cnn/graph/parallel.hpp"
#include "cnn/graph/residual.hpp"
#include "cnn/graph/sequential.hpp"
