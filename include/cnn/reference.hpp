// Every formula of FORMULAS.md, written literally: the oracle of the test suite.
#pragma once

#include "cnn/reference/activation.hpp"
#include "cnn/reference/convolution.hpp"
#include "cnn/reference/dense.hpp"
#include "cnn/reference/loss.hpp"
#include "cnn/reference/normalization.hpp"
#include "cnn/reference/pooling.hpp"
