/* stub, to be written */ typedef int stub_dag_t;
