// A shared library without hetrain_model_plugin: --model-plugin must refuse it (test_bad_input).
extern "C" int not_a_hetrain_plugin() { return 42; }
