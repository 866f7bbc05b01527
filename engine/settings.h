#ifndef STUB_config
#define STUB_config
#endif
