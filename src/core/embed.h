/* Files embedded in the binary at build time (the web app, the report's
 * page): the assembler's .incbin pulls FILE (a path from the repository
 * root) into .rodata between SYM and SYM_end.  The Makefile makes the
 * embedding object depend on the files. */
#ifndef FX_CORE_EMBED_H
#define FX_CORE_EMBED_H

#define FX_EMBED(sym, file)                                                                        \
    __asm__(".section .rodata\n.balign 16\n.global " #sym "\n" #sym ":\n.incbin \"" file           \
            "\"\n.global " #sym "_end\n" #sym "_end:\n.previous\n");                               \
    extern const unsigned char sym[], sym##_end[];

#endif
