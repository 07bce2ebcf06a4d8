/* Opens a memory store through the installed library and round-trips a tape. */
#include <tapestore/tapestore.h>

#include <stdio.h>

int main(void)
{
    tape_store *s = NULL;
    tape *t = NULL, *back = NULL;
    if (tape_store_open_spec(&s, NULL, "memory:", 0) != TAPE_OK || tape_new(&t, "installed") != TAPE_OK ||
        tape_store_save(s, t) != TAPE_OK || tape_store_load(&back, s, "installed") != TAPE_OK) {
        fprintf(stderr, "consumer: %s\n", tape_errmsg());
        return 1;
    }
    printf("consumer: loaded %s with library %d\n", tape_id(back), tape_version());
    tape_free(back);
    tape_free(t);
    tape_store_free(s);
    return 0;
}
