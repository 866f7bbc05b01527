#ifndef STUB_cmd
#define STUB_cmd
#endif
