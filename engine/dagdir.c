/* stub, to be written */ typedef int stub_dagdir_t;
