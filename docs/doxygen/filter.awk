# Doxygen's INPUT_FILTER for include/mempool.h and include/mempool.hpp: turns the headers' plain
# comments into doc comments, so the contracts stay written once, on the declarations, in the
# headers' own style. Each input line gives one output line, so warnings keep their line numbers
# (but for a comment that documents the prototypes above it, which moves above them).
#   - the file header becomes the text of the overview page: mempool(3), or mempool_cxx(3), which
#     holds the declarations of namespace mempool;
#   - in mempool.h each section banner opens the group of its family (the table below), and says
#     what the family is on its page when it reads "Family: what it is"; the banner "Internals"
#     starts a \cond block that Doxygen skips;
#   - a comment that starts a line at an indent of at most 4 (declarations and their members, not
#     code in function bodies) becomes /** */, and one after code on such a line /**< */;
#   - a comment over two or more one-line prototypes or macros documents them all (the others
#     copy the first's), and so does one right below the prototypes of an #ifdef MP_NO_INLINE
#     block (mp_pool_alloc and mp_pool_free), which moves above them.
# A banner that matches no family stops the build: every exported function must land on a page.

function family(title) {
    if (title ~ /^(Options|Creating and destroying pools|Allocating and freeing)/) return "mp_pool"
    if (title ~ /^Errors/) return "mp_error"
    if (title ~ /^Statistics/) return "mp_stats"
    if (title ~ /^Heaps/) return "mp_heap"
    if (title ~ /^The process-wide heap/) return "mp_malloc"
    if (title ~ /^Arenas/) return "mp_arena"
    if (title ~ /^Internals/) return "INTERNAL"
    printf "%s: banner \"%s\" belongs to no family (docs/doxygen/filter.awk)\n", FILENAME, title \
        > "/dev/stderr"
    failed = 1
    exit 1
}

function indent(s) { match(s, /^ */); return RLENGTH }
# a declaration of one line: a prototype or a macro
function is_member(s) { return s ~ /^[a-z].*\(.*\);$/ || s ~ /^#define / }
# the name a one-line member declares, and a doc comment that gives it that of another
function name_of(s) {
    if (s ~ /^#define /) { split(s, w, /[ (]/); return w[2] }
    sub(/\(.*/, "", s)
    sub(/.*[ *]/, "", s)
    return s
}
function same_doc(s, first) { return s " /**< \\copydoc " first " */" }
function opens_doc(s) { return indent(s) <= 4 && s ~ /^ *\/\*([^*]|$)/ && s !~ /^\/\* (---|===)/ }
# a comment over #if, #include or #pragma is about the code, not about a declaration
function over_code(c) { return L[c + 1] ~ /^#(if|include|pragma)/ }
# the index of the line that closes the comment opened at line i
function comment_end(i) { while (i < n && L[i] !~ /\*\//) i++; return i }
# Doxygen reads a backslash as a command: the headers' text means the character
# (and the headers' layout holds meaning: a line that opens with a contract's label, as
# "Complexity:" or "Returns NULL if and only if:", starts a paragraph, ending a list before it;
# one of a list of fields, as "  align:  ...", starts a line)
function esc(s) {
    gsub(/\\/, "&&", s)
    if (s ~ /^ \* (Complexity|Guarantees|Memory:|Returns|Thread-safety|Undefined)/)
        sub(/\* /, "* <p>", s)
    else if (s ~ /^ \*   [a-z_]+(, [a-z_]+)*: /) sub(/\*   /, "*   <br>", s)
    return s
}
function doc(s) { sub(/\/\*/, "/**", s); return esc(s) }
function trailing_doc(s) {
    if (indent(s) <= 4 && s ~ /[^ ].*[;,{] +\/\*([^*]|$)/ && s !~ /^#/) {
        sub(/ \/\*/, " /**<", s)
        s = esc(s)
    }
    return s
}

{ L[++n] = $0 }

END {
    if (failed) exit 1
    cxx = FILENAME ~ /\.hpp$/
    group = ""
    # the file header: the first comment
    e = comment_end(1)
    print "/** \\addtogroup " (cxx ? "mempool_cxx" : "mempool")
    for (i = 2; i < e; i++) print esc(L[i])
    print L[e]
    for (i = e + 1; i <= n; i++) {
        s = L[i]
        if (!cxx && s ~ /^\/\* (---|===)/) { # a section banner: /* ---- \n * Title
            title = L[i + 1]
            sub(/^ \* */, "", title)
            g = family(title)
            close_group = group != "" ? "/** @} */ " : ""
            if (g == "INTERNAL") { # skipped to the end of the header
                print close_group "/** \\cond INTERNAL */ " s
                for (i++; i <= n && L[i] !~ /^#endif \/\* MEMPOOL_H \*\//; i++) print L[i]
                if (i <= n) print L[i]
                print "/** \\endcond */"
                group = ""
                continue
            }
            group = g
            if (title !~ /: /) {
                print close_group "/** \\addtogroup " g " */ /**@{*/ " s
                continue
            }
            # "Family: what it is" is said on the family's page
            print close_group "/** \\addtogroup " g
            for (i++; L[i] !~ /\*\//; i++) print esc(L[i])
            print " */ /**@{*/"
            continue
        }
        if (!cxx && group == "") { print s; continue } # before the first family: no API
        # mempool.hpp: the namespace's declarations are the C++ page's
        if (cxx && s == "{" && L[i - 1] == "namespace mempool") { print s " /**@{*/"; continue }
        if (cxx && s ~ /^} \/\/ namespace mempool$/) { print "/**@}*/ " s; continue }
        if (s ~ /^#ifdef MP_NO_INLINE/) { # prototypes documented by the comment below them
            for (x = i; x <= n && L[x] != "#else" && L[x] != "#endif"; x++) ;
            for (y = x; y <= n && L[y] != "#endif"; y++) ;
            k = L[y + 1] == "" ? y + 2 : y + 1
            if (opens_doc(L[k])) {
                c = comment_end(k)
                print doc(L[k])
                for (j = k + 1; j <= c; j++) print esc(L[j])
                for (j = i; j <= y; j++)
                    print (j > i + 1 && j < x ? same_doc(L[j], name_of(L[i + 1])) : L[j])
                if (k == y + 2) print ""
                i = c
                continue
            }
        }
        if (opens_doc(s) && !over_code(comment_end(i))) {
            c = comment_end(i)
            for (p = c + 1; p <= n && is_member(L[p]); p++) ;
            print doc(s)
            for (j = i + 1; j <= c; j++) print esc(L[j])
            if (p - c - 1 >= 2) { # the members after the first: \copydoc of the first
                print L[c + 1]
                for (j = c + 2; j < p; j++) print same_doc(L[j], name_of(L[c + 1]))
                c = p - 1
            }
            i = c
            continue
        }
        print trailing_doc(s)
    }
}
