// Test tool: rewrites a model file of the example networks as cnn::save_model(net, path)
// writes it without metadata (and, with a third argument, with that metadata instead),
// for the command-line tests of mnist_predict.
//   strip_metadata IN OUT [METADATA]
#include <cnn/cnn.hpp>

#include <iostream>

#include "common.hpp"

int main(int argc, char** argv) try {
    if (argc != 3 && argc != 4) {
        std::cerr << "usage: strip_metadata IN OUT [METADATA]\n";
        return 2;
    }
    const examples::Task task =
        examples::task_from_metadata(examples::parse_metadata(cnn::read_model_metadata(argv[1])), argv[1]);
    const std::string name = examples::network_for_file(task, [&](auto& net) { (void)cnn::load_model(net, argv[1]); });
    examples::with_network(name, task, [&](auto net) {
        (void)cnn::load_model(net, argv[1]);
        cnn::save_model(net, argv[2], argc == 4 ? argv[3] : "");
    });
    return 0;
} catch (const std::exception& e) {
    std::cerr << "strip_metadata: " << e.what() << "\n";
    return 1;
}
